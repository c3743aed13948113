"""The request to process one region of an image, a unit of work handed to a worker."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from model_runner.api.errors import (
    check_int_pair,
    check_keys,
    check_optional_str,
    check_str,
    check_tile_overlap,
    fail,
)
from model_runner.common.typing import ImageDimensions, ImageRegion


@dataclass
class RegionRequest:
    """A request to run a model over one region of an image.

    Checked on construction (later assignments are not checked): ``region_bounds``, ``tile_size`` and
    ``tile_overlap`` become tuples, an empty ``image_read_role`` becomes None and an empty ``region_id`` is derived
    as ``f"{region_bounds}-{job_id}"``, e.g. "((0, 0), (2048, 2048))-job-1". ``image_url`` and ``model_name`` may be
    empty (they default to ""). Any invalid field raises RequestValidationError naming it.
    """

    image_id: str
    job_id: str
    region_bounds: ImageRegion
    region_id: str = ""
    image_url: str = ""
    image_read_role: str | None = None
    model_name: str = ""
    model_invoke_mode: str = "SM_ENDPOINT"
    tile_size: ImageDimensions = (1024, 1024)
    tile_overlap: ImageDimensions = (50, 50)
    tile_format: str = "NITF"
    tile_compression: str = "NONE"

    def __post_init__(self) -> None:
        """Check and normalise every field, and derive region_id when it is empty.

        :raises RequestValidationError: naming the first invalid field
        """
        owner = type(self).__name__
        self.image_id = check_str(owner, "image_id", self.image_id)
        self.job_id = check_str(owner, "job_id", self.job_id)
        self.region_bounds = _check_region_bounds(owner, self.region_bounds)
        self.region_id = check_str(owner, "region_id", self.region_id, allow_empty=True)
        if not self.region_id:
            self.region_id = f"{self.region_bounds}-{self.job_id}"
        self.image_url = check_str(owner, "image_url", self.image_url, allow_empty=True)
        self.image_read_role = check_optional_str(owner, "image_read_role", self.image_read_role)
        self.model_name = check_str(owner, "model_name", self.model_name, allow_empty=True)
        self.model_invoke_mode = check_str(owner, "model_invoke_mode", self.model_invoke_mode)
        self.tile_size = check_int_pair(owner, "tile_size", self.tile_size, minimum=1)
        self.tile_overlap = check_tile_overlap(owner, self.tile_overlap, self.tile_size)
        self.tile_format = check_str(owner, "tile_format", self.tile_format)
        self.tile_compression = check_str(owner, "tile_compression", self.tile_compression)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RegionRequest:
        """Build a request from a dict keyed by the field names (snake_case).

        :param data: Mapping[str, Any] = the fields; optional ones may be left out
        :return: RegionRequest = the checked request
        :raises RequestValidationError: for unknown keys (all named), a missing required field, or an invalid value
        """
        return cls(**check_keys(cls, data))


def _check_region_bounds(owner: str, value: object) -> ImageRegion:
    """Check region bounds: ((row, col), (width, height)) with a non-negative origin and a positive size.

    :param owner: str = the request class name
    :param value: object = the value given; lists are accepted
    :return: ImageRegion = the bounds as nested tuples
    :raises RequestValidationError: when the value does not have that shape
    """
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise fail(owner, "region_bounds", f"expected ((row, col), (width, height)), got {value!r}")
    try:
        origin = check_int_pair(owner, "region_bounds", value[0], minimum=0)
        size = check_int_pair(owner, "region_bounds", value[1], minimum=1)
    except ValueError as error:
        reason = "expected ((non-negative row, col), (positive width, height))"
        raise fail(owner, "region_bounds", f"{reason}, got {value!r}") from error
    return origin, size
