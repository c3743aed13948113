"""A synthetic image and a synthetic detector, so that a whole job can run without imagery or a model endpoint.

The image is only its geometry: a size in pixels and an affine mapping from pixels to longitude/latitude. Regions and
tiles are cut the way the model runner cuts them (fixed-size crops with an overlap, clipped at the far edges). The
detector returns GeoJSON features shaped like a real model's (a geographic polygon, the pixel geometry in
``imageGeometry``, classes with scores) and is deterministic: the same seed, image and tile always give the same
features, with the same ids, so that a retried tile writes exactly what the first attempt wrote. The features depend
on the seed and the tile only (their ids also on the image), so jobs with the same seed detect the same things. With a
failure rate it also fails some tile attempts, deterministically per attempt.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import geojson

from model_runner.common.typing import ImageDimensions, ImageRegion

#: Namespace of the feature ids (uuid5 of image, tile and index).
FEATURE_NAMESPACE = uuid.UUID("6f0e6c3e-52a3-4c1e-9a55-6d1f4f7d1c2a")

#: Object classes of the synthetic detector, with (min, max) sizes in pixels.
CLASSES: dict[str, tuple[int, int]] = {
    "vehicle": (6, 14),
    "ship": (20, 90),
    "building": (18, 70),
    "aircraft": (25, 60),
    "storage-tank": (10, 30),
}


def generate_crops(bounds: ImageRegion, size: ImageDimensions, overlap: ImageDimensions) -> list[ImageRegion]:
    """Cut a rectangle into crops of a fixed size that overlap, row by row; the last crops are clipped at the edge.

    :param bounds: ImageRegion = the rectangle, ((row, col), (width, height))
    :param size: ImageDimensions = the crop size, (width, height)
    :param overlap: ImageDimensions = the overlap of neighbouring crops, (width, height); smaller than ``size``
    :return: List[ImageRegion] = the crops, ((row, col), (width, height)), covering the rectangle
    :raises ValueError: when a size is not positive or an overlap is negative or not smaller than the size
    """
    (row0, col0), (width, height) = bounds
    if width <= 0 or height <= 0 or size[0] <= 0 or size[1] <= 0:
        raise ValueError(f"sizes must be positive: bounds {bounds}, crop size {size}")
    if not (0 <= overlap[0] < size[0] and 0 <= overlap[1] < size[1]):
        raise ValueError(f"overlap {overlap} must be at least 0 and smaller than the crop size {size}")
    stride_x, stride_y = size[0] - overlap[0], size[1] - overlap[1]
    count_x = max(1, math.ceil((width - overlap[0]) / stride_x))
    count_y = max(1, math.ceil((height - overlap[1]) / stride_y))
    crops: list[ImageRegion] = []
    for j in range(count_y):
        row = row0 + j * stride_y
        crop_height = min(size[1], row0 + height - row)
        for i in range(count_x):
            col = col0 + i * stride_x
            crops.append(((row, col), (min(size[0], col0 + width - col), crop_height)))
    return crops


@dataclass(frozen=True)
class SyntheticImage:
    """The geometry of an image: its size and where it lies on the Earth.

    :param image_id: str = the image id of the job
    :param width: int = width in pixels
    :param height: int = height in pixels
    :param origin: Tuple[float, float] = longitude and latitude of the upper-left pixel corner
    :param gsd_degrees: float = size of a pixel in degrees (about 0.5 m at the equator by default)
    """

    image_id: str
    width: int
    height: int
    origin: tuple[float, float] = (-122.3493, 47.6205)
    gsd_degrees: float = 4.5e-6

    def regions(self, region_size: ImageDimensions, overlap: ImageDimensions = (0, 0)) -> list[ImageRegion]:
        """Cut the image into regions.

        :param region_size: ImageDimensions = region size, (width, height)
        :param overlap: ImageDimensions = overlap of neighbouring regions
        :return: List[ImageRegion] = the regions, ((row, col), (width, height))
        """
        return generate_crops(((0, 0), (self.width, self.height)), region_size, overlap)

    def to_lonlat(self, x: float, y: float) -> tuple[float, float]:
        """Map a pixel position (column x, row y) to longitude and latitude.

        :param x: float = column, in pixels
        :param y: float = row, in pixels
        :return: Tuple[float, float] = (longitude, latitude), rounded to 8 decimals (about 1 mm)
        """
        lon = self.origin[0] + x * self.gsd_degrees
        lat = self.origin[1] - y * self.gsd_degrees
        return round(lon, 8), round(lat, 8)

    @property
    def extents(self) -> list[float]:
        """[min lon, min lat, max lon, max lat] of the image."""
        west, north = self.to_lonlat(0, 0)
        east, south = self.to_lonlat(self.width, self.height)
        return [west, south, east, north]


class TileFailure(Exception):
    """The synthetic model failed on a tile (as an endpoint error or a timeout would)."""


class SyntheticDetector:
    """A deterministic stand-in for a model endpoint.

    :param seed: int = the seed; the same seed, image and tile always give the same features
    :param features_per_tile: int = the mean number of detections per full tile (smaller tiles get fewer)
    :param failure_rate: float = probability that one attempt on a tile fails, in [0, 1]
    :param model_name: str = the model name recorded in the features
    """

    def __init__(
        self,
        seed: int = 0,
        features_per_tile: int = 20,
        failure_rate: float = 0.0,
        model_name: str = "synthetic-detector",
    ) -> None:
        if features_per_tile < 0:
            raise ValueError(f"features_per_tile must be at least 0, got {features_per_tile}")
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError(f"failure_rate must be between 0 and 1, got {failure_rate}")
        self.seed = seed
        self.features_per_tile = features_per_tile
        self.failure_rate = failure_rate
        self.model_name = model_name

    def fails(self, image: SyntheticImage, tile: ImageRegion, attempt: int) -> bool:
        """Tell whether an attempt on a tile fails (deterministic per seed, tile and attempt).

        :param image: SyntheticImage = the image
        :param tile: ImageRegion = the tile
        :param attempt: int = the attempt number, from 1
        :return: bool = True when this attempt fails
        """
        if self.failure_rate <= 0.0:
            return False
        return random.Random(f"fail/{self.seed}/{tile}/{attempt}").random() < self.failure_rate

    def detect(self, image: SyntheticImage, tile: ImageRegion, attempt: int = 1) -> list[geojson.Feature]:
        """Run the synthetic model on a tile.

        :param image: SyntheticImage = the image
        :param tile: ImageRegion = the tile, ((row, col), (width, height))
        :param attempt: int = the attempt number, from 1 (only decides failures: features never depend on it)
        :return: List[geojson.Feature] = the detections, inside the tile (and the image), with ids unique to
            (image, tile, index)
        :raises TileFailure: when this attempt fails
        """
        if self.fails(image, tile, attempt):
            raise TileFailure(f"synthetic model failed on tile {tile} of {image.image_id} (attempt {attempt})")
        return list(self._features(image, tile))

    def expected_count(self, image: SyntheticImage, tile: ImageRegion) -> int:
        """Return how many features :meth:`detect` gives for a tile, without building them.

        :param image: SyntheticImage = the image
        :param tile: ImageRegion = the tile
        :return: int = the number of features
        """
        return self._count(self._rng(image, tile), tile)

    def _rng(self, image: SyntheticImage, tile: ImageRegion) -> random.Random:
        return random.Random(f"detect/{self.seed}/{tile}")

    def _count(self, rng: random.Random, tile: ImageRegion) -> int:
        (_, _), (width, height) = tile
        mean = self.features_per_tile * min(1.0, (width * height) / (512 * 512))
        if mean <= 0:
            return 0
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))

    def _features(self, image: SyntheticImage, tile: ImageRegion) -> Iterator[geojson.Feature]:
        rng = self._rng(image, tile)
        count = self._count(rng, tile)
        (row, col), (width, height) = tile
        classes = list(CLASSES)
        for index in range(count):
            label = rng.choice(classes)
            low, high = CLASSES[label]
            size_x = min(width, rng.randint(low, high))
            size_y = min(height, rng.randint(low, high))
            x0 = col + rng.randint(0, width - size_x)
            y0 = row + rng.randint(0, height - size_y)
            score = round(rng.uniform(0.3, 0.99), 4)
            yield self._feature(image, tile, index, label, score, (x0, y0, x0 + size_x, y0 + size_y))

    def _feature(
        self,
        image: SyntheticImage,
        tile: ImageRegion,
        index: int,
        label: str,
        score: float,
        bounds: tuple[int, int, int, int],
    ) -> geojson.Feature:
        minx, miny, maxx, maxy = bounds
        pixel_ring = [[minx, miny], [maxx, miny], [maxx, maxy], [minx, maxy], [minx, miny]]
        geo_ring = [list(image.to_lonlat(x, y)) for x, y in pixel_ring]
        feature_id = str(uuid.uuid5(FEATURE_NAMESPACE, f"{image.image_id}/{tile}/{index}"))
        properties: dict[str, Any] = {
            "image_id": image.image_id,
            "imageGeometry": {"type": "Polygon", "coordinates": [pixel_ring]},
            "imageBBox": [minx, miny, maxx, maxy],
            "featureClasses": [{"iri": label, "score": score}],
            "modelMetadata": {"modelName": self.model_name, "ontologyName": "demo", "ontologyVersion": "1"},
            "sourceTile": [list(tile[0]), list(tile[1])],
        }
        return geojson.Feature(id=feature_id, geometry=geojson.Polygon([geo_ring]), properties=properties)
