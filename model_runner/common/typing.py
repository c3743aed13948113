"""Small types shared by the tables: image coordinates, regions, request and tile states."""

from __future__ import annotations

from enum import Enum

#: A pixel coordinate in an image, (row, column) as the classic implementation orders it.
ImageCoord = tuple[int, int]

#: A size in pixels, (width, height).
ImageDimensions = tuple[int, int]

#: A rectangle in an image: its upper-left coordinate and its size, ((row, column), (width, height)).
ImageRegion = tuple[ImageCoord, ImageDimensions]


class RequestStatus(str, Enum):
    """Status of an image or region request, stored as its string value."""

    STARTED = "STARTED"
    IN_PROGRESS = "IN_PROGRESS"
    PARTIAL = "PARTIAL"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


class TileState(str, Enum):
    """Outcome of one tile of a region, which decides the tile list it is recorded in."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
