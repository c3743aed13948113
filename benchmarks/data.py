"""Realistic detections, tile by tile, as a region worker hands them to the feature table.

The generator is deterministic (seeded): every variant of a run (our layer, the floor, the classic layout) stores
exactly the same features. A detection looks like what the model runner stores after a model answered for a tile: a
GeoJSON Feature with a geographic polygon, its pixel bounds and outline, a score, its classes and inference metadata,
about 1 KB as JSON.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

import geojson

from model_runner.common.typing import ImageDimensions, ImageRegion

#: Object classes a vehicle and aircraft detector reports.
CLASSES = (
    "ground_motor_passenger_vehicle",
    "ground_motor_truck",
    "ground_motor_bus",
    "aircraft_fixed_wing",
    "maritime_vessel_small",
)

#: Degrees per pixel of the synthetic image (about 0.5 m ground sample distance).
DEGREES_PER_PIXEL = 4.5e-6


@dataclass(frozen=True)
class Workload:
    """The detections of one synthetic image job.

    :param image_id: str = the image id every feature carries in ``properties.image_id``
    :param job_id: str = the job id carried in the inference metadata
    :param feature_count: int = N, the number of detections
    :param tile_size: ImageDimensions = tile (width, height) in pixels
    :param overlap: ImageDimensions = tile overlap (width, height) in pixels
    :param features_per_tile: int = mean detections per tile
    :param seed: int = random seed; the same seed gives the same features
    """

    image_id: str
    job_id: str
    feature_count: int
    tile_size: ImageDimensions = (512, 512)
    overlap: ImageDimensions = (32, 32)
    features_per_tile: int = 25
    seed: int = 1

    @property
    def tile_count(self) -> int:
        """Tiles needed for the detections, at about ``features_per_tile`` each.

        :return: int = the number of tiles (at least 1)
        """
        return max(1, math.ceil(self.feature_count / self.features_per_tile))

    @property
    def grid_columns(self) -> int:
        """Tiles per row of the (square) synthetic image.

        :return: int = columns of tiles
        """
        return max(1, math.ceil(math.sqrt(self.tile_count)))


def tile_regions(workload: Workload) -> Iterator[ImageRegion]:
    """Yield the tiles of the synthetic image, row by row, as ((row, col), (width, height)) regions.

    :param workload: Workload = the job
    :return: Iterator[ImageRegion] = one region per tile, ``tile_count`` in all
    """
    width, height = workload.tile_size
    stride_x, stride_y = width - workload.overlap[0], height - workload.overlap[1]
    for index in range(workload.tile_count):
        grid_row, grid_col = divmod(index, workload.grid_columns)
        yield (grid_row * stride_y, grid_col * stride_x), (width, height)


def detection(rng: random.Random, workload: Workload, tile: ImageRegion) -> geojson.Feature:
    """Make one detection somewhere in a tile.

    :param rng: random.Random = the seeded generator
    :param workload: Workload = the job
    :param tile: ImageRegion = the tile the model looked at
    :return: geojson.Feature = the detection
    """
    (row, col), (width, height) = tile
    box_w, box_h = rng.randint(8, 64), rng.randint(8, 64)
    minx = col + rng.randint(0, width - box_w)
    miny = row + rng.randint(0, height - box_h)
    maxx, maxy = minx + box_w, miny + box_h
    ring = [[minx, miny], [maxx, miny], [maxx, maxy], [minx, maxy], [minx, miny]]
    lon0, lat0 = 12.4 + rng.random() * 1e-3, 41.9 + rng.random() * 1e-3
    geo_ring = [[lon0 + x * DEGREES_PER_PIXEL, lat0 - y * DEGREES_PER_PIXEL] for x, y in ring]
    score = rng.random() * 0.69 + 0.3
    label = CLASSES[rng.randrange(len(CLASSES))]
    centre = geo_ring[0][0] + box_w * DEGREES_PER_PIXEL / 2, geo_ring[0][1] - box_h * DEGREES_PER_PIXEL / 2
    return geojson.Feature(
        id=f"{rng.getrandbits(128):032x}",
        geometry={"type": "Polygon", "coordinates": [geo_ring]},
        properties={
            "image_id": workload.image_id,
            "bounds_imcoords": [minx, miny, maxx, maxy],
            "geom_imcoords": ring,
            "detection_score": score,
            "feature_types": {label: score},
            "featureClasses": [{"iri": label, "score": score, "rawScore": score}],
            "center_longitude": centre[0],
            "center_latitude": centre[1],
            "inferenceMetadata": {
                "jobId": workload.job_id,
                "inferenceDT": f"2024-05-0{1 + rng.randrange(9)}T12:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z",
            },
            "modelName": "centerpoint-detector-v2",
        },
    )


def generate(workload: Workload) -> list[tuple[ImageRegion, list[geojson.Feature]]]:
    """Return the tiles of a job with their detections, ``feature_count`` detections in all.

    Tiles get between half and one and a half times ``features_per_tile`` detections; the last tile takes what is
    left. Detections lie anywhere in their tile, overlap included, so some of them belong to the tile key of a
    neighbour pair of tiles, as in a real job.

    :param workload: Workload = the job
    :return: List[Tuple[ImageRegion, List[geojson.Feature]]] = (tile, detections) pairs
    """
    rng = random.Random(workload.seed)
    remaining = workload.feature_count
    tiles: list[tuple[ImageRegion, list[geojson.Feature]]] = []
    low, high = max(1, workload.features_per_tile // 2), workload.features_per_tile * 3 // 2
    regions = list(tile_regions(workload))
    for position, tile in enumerate(regions):
        if remaining <= 0:
            break
        left_tiles = len(regions) - position
        count = remaining if left_tiles == 1 else min(remaining, rng.randint(low, high))
        tiles.append((tile, [detection(rng, workload, tile) for _ in range(count)]))
        remaining -= count
    while remaining > 0:  # the random counts fell short: top up the last tiles
        tile, features = tiles[-1 - (remaining % len(tiles))]
        features.append(detection(rng, workload, tile))
        remaining -= 1
    return tiles
