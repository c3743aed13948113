"""Planning the synthetic job: what to run (:class:`JobSpec`), how the image is cut (:class:`JobPlan`), and where a
running job is (:class:`Progress`).

Nothing here sends a request: the plan is pure arithmetic on the spec, the same for every run with the same spec.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from model_runner.api import RegionRequest
from model_runner.common.typing import ImageDimensions

from .synthetic import SyntheticDetector, SyntheticImage, generate_crops

#: The model endpoint whose regions in progress the demo tracks.
DEMO_ENDPOINT = "synthetic-detector-endpoint"


@dataclass(frozen=True)
class JobSpec:
    """The image, its tiling, and how the workers behave.

    :param image_id: str = the image id of the job
    :param width: int = image width in pixels
    :param height: int = image height in pixels
    :param region_size: ImageDimensions = region size, (width, height)
    :param tile_size: ImageDimensions = tile size, (width, height)
    :param overlap: ImageDimensions = tile overlap, (width, height)
    :param workers: int = region workers (threads), each processing one region at a time
    :param tile_workers: int = threads per region worker processing the region's tiles
    :param failure_rate: float = probability of a tile failure, a region crash and a duplicated completion
    :param seed: int = seed of the detector and of the failures
    :param features_per_tile: int = mean detections per full tile
    :param region_attempts: int = deliveries of a region while some of its tiles fail (its failed tiles are tried
        again; the last delivery completes the region whatever the outcome)
    :param max_deliveries: int = deliveries of one message before the run gives up on it (crashes, errors)
    :param model_name: str = model name recorded in the job and the features
    :param endpoint_name: str = the endpoint tracked in the endpoint statistics table
    """

    image_id: str
    width: int = 8192
    height: int = 8192
    region_size: ImageDimensions = (2048, 2048)
    tile_size: ImageDimensions = (512, 512)
    overlap: ImageDimensions = (32, 32)
    workers: int = 8
    tile_workers: int = 4
    failure_rate: float = 0.0
    seed: int = 0
    features_per_tile: int = 20
    region_attempts: int = 2
    max_deliveries: int = 5
    model_name: str = "synthetic-detector"
    endpoint_name: str = DEMO_ENDPOINT

    def __post_init__(self) -> None:
        """Check the values.

        :raises ValueError: naming the first value out of range
        """
        for name in ("width", "height", "workers", "tile_workers", "region_attempts", "max_deliveries"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("region_size", "tile_size"):
            size = getattr(self, name)
            if len(size) != 2 or min(size) < 1:
                raise ValueError(f"{name} must be two sizes of at least 1 pixel, got {size}")
        if len(self.overlap) != 2 or not all(0 <= o < t for o, t in zip(self.overlap, self.tile_size, strict=True)):
            raise ValueError(f"overlap must be at least 0 and smaller than the tile size {self.tile_size}")
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError(f"failure_rate must be between 0 and 1, got {self.failure_rate}")
        if self.features_per_tile < 0:
            raise ValueError(f"features_per_tile must be at least 0, got {self.features_per_tile}")
        if not self.image_id:
            raise ValueError("image_id must not be empty")


@dataclass(frozen=True)
class Progress:
    """Where a running job is.

    :param tiles_done: int = tiles with an outcome recorded (each tile counts once)
    :param tiles_total: int = tiles of the image
    :param regions_done: int = regions completed
    :param regions_total: int = regions of the image
    :param features_written: int = distinct features written so far
    :param phase: str = "processing", "aggregating" or "done"
    """

    tiles_done: int
    tiles_total: int
    regions_done: int
    regions_total: int
    features_written: int
    phase: str


ProgressCallback = Callable[[Progress], None]


class JobPlan:
    """The image of a spec cut into regions and tiles, with the ids the job and its regions get.

    :param spec: JobSpec = what to run
    """

    def __init__(self, spec: JobSpec) -> None:
        self.spec = spec
        self.image = SyntheticImage(spec.image_id, spec.width, spec.height)
        self.detector = SyntheticDetector(spec.seed, spec.features_per_tile, spec.failure_rate, spec.model_name)
        self.job_id = f"job-{spec.image_id}"
        self.regions = self.image.regions(spec.region_size)
        self.tiles = [generate_crops(region, spec.tile_size, spec.overlap) for region in self.regions]
        self.region_ids = [f"{region}-{self.job_id}" for region in self.regions]
        self.tiles_total = sum(len(tiles) for tiles in self.tiles)

    def region_request(self, index: int) -> RegionRequest:
        """Return the region request a worker receives for a region.

        :param index: int = the region's position in :attr:`regions`
        :return: RegionRequest = the request
        """
        spec = self.spec
        return RegionRequest(
            image_id=spec.image_id,
            job_id=self.job_id,
            region_bounds=self.regions[index],
            region_id=self.region_ids[index],
            image_url=f"synthetic://{spec.image_id}",
            model_name=spec.model_name,
            tile_size=spec.tile_size,
            tile_overlap=spec.overlap,
        )


def tile_key(tile: Iterable[Any]) -> tuple[tuple[int, int], tuple[int, int]]:
    """Return a tile as nested tuples of ints, however it was stored ([[r, c], [w, h]], tuples, Decimals).

    :param tile: Iterable[Any] = the tile, ((row, column), (width, height))
    :return: Tuple[Tuple[int, int], Tuple[int, int]] = the same tile as ints
    """
    origin, size = tile
    row, col = origin
    width, height = size
    return (int(row), int(col)), (int(width), int(height))
