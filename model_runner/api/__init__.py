"""The requests the model runner accepts: a whole image, or one region of it."""

from model_runner.api.errors import RequestValidationError
from model_runner.api.image_request import ImageRequest
from model_runner.api.region_request import RegionRequest

__all__ = ["ImageRequest", "RegionRequest", "RequestValidationError"]
