"""Types and helpers shared across the model runner: image coordinates, request states, timing, feature geometry."""

from model_runner.common.feature_utils import get_feature_image_bounds, get_feature_image_geometry
from model_runner.common.timer import Timer
from model_runner.common.typing import ImageCoord, ImageDimensions, ImageRegion, RequestStatus, TileState

__all__ = [
    "ImageCoord",
    "ImageDimensions",
    "ImageRegion",
    "RequestStatus",
    "TileState",
    "Timer",
    "get_feature_image_bounds",
    "get_feature_image_geometry",
]
