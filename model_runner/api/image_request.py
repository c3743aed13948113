"""The request to process one image: where it is, which model to run and how to tile it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shapely.geometry.base import BaseGeometry

from model_runner.api import external
from model_runner.api.errors import (
    RequestValidationError,
    check_dict_list,
    check_geometry,
    check_int_pair,
    check_keys,
    check_optional_dict,
    check_optional_str,
    check_str,
    check_tile_overlap,
)
from model_runner.common.typing import ImageDimensions


@dataclass
class ImageRequest:
    """A request to run a model over one image.

    Checked on construction (later assignments are not checked): ``tile_size``, ``tile_overlap`` and lists become
    tuples/lists, a WKT ``roi`` becomes a shapely geometry, an empty ``image_read_role`` becomes None.
    Any invalid field raises RequestValidationError naming it.
    """

    job_id: str
    image_id: str
    image_url: str
    image_read_role: str | None = None
    model_name: str = ""
    model_invoke_mode: str = "SM_ENDPOINT"
    tile_size: ImageDimensions = (1024, 1024)
    tile_overlap: ImageDimensions = (50, 50)
    tile_format: str = "NITF"
    tile_compression: str = "NONE"
    outputs: list[dict[str, Any]] = field(default_factory=list)
    feature_properties: list[dict[str, Any]] = field(default_factory=list)
    feature_distillation_option: dict[str, Any] | None = None
    roi: BaseGeometry | None = None
    model_invocation_role: str | None = None
    model_endpoint_parameters: dict[str, Any] | None = None
    post_processing: list[dict[str, Any]] = field(default_factory=external.default_post_processing)

    def __post_init__(self) -> None:
        """Check and normalise every field.

        :raises RequestValidationError: naming the first invalid field
        """
        owner = type(self).__name__
        self.job_id = check_str(owner, "job_id", self.job_id)
        self.image_id = check_str(owner, "image_id", self.image_id)
        self.image_url = check_str(owner, "image_url", self.image_url)
        self.image_read_role = check_optional_str(owner, "image_read_role", self.image_read_role)
        self.model_name = check_str(owner, "model_name", self.model_name)
        self.model_invoke_mode = check_str(owner, "model_invoke_mode", self.model_invoke_mode)
        self.tile_size = check_int_pair(owner, "tile_size", self.tile_size, minimum=1)
        self.tile_overlap = check_tile_overlap(owner, self.tile_overlap, self.tile_size)
        self.tile_format = check_str(owner, "tile_format", self.tile_format)
        self.tile_compression = check_str(owner, "tile_compression", self.tile_compression)
        self.outputs = check_dict_list(owner, "outputs", self.outputs)
        self.feature_properties = check_dict_list(owner, "feature_properties", self.feature_properties)
        self.feature_distillation_option = check_optional_dict(
            owner, "feature_distillation_option", self.feature_distillation_option
        )
        self.roi = check_geometry(owner, "roi", self.roi)
        self.model_invocation_role = check_optional_str(owner, "model_invocation_role", self.model_invocation_role)
        self.model_endpoint_parameters = check_optional_dict(
            owner, "model_endpoint_parameters", self.model_endpoint_parameters
        )
        self.post_processing = check_dict_list(owner, "post_processing", self.post_processing)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageRequest:
        """Build a request from a dict keyed by the field names (snake_case).

        :param data: Mapping[str, Any] = the fields; optional ones may be left out
        :return: ImageRequest = the checked request
        :raises RequestValidationError: for unknown keys (all named), a missing required field, or an invalid value
        """
        return cls(**check_keys(cls, data))

    @classmethod
    def from_external_message(cls, message: Mapping[str, Any] | str | bytes) -> ImageRequest:
        """Build a request from an image-queue message: the camelCase JSON that clients put on the image queue.

        ``jobId`` -> job_id; the first of ``imageUrls`` -> image_url; image_id = "<jobId>:<image_url>";
        ``imageReadRole``; ``imageProcessor`` {``name``, ``type`` (default SM_ENDPOINT), ``assumedRole``} ->
        model_name, model_invoke_mode, model_invocation_role; ``imageProcessorParameters`` (a dict) ->
        model_endpoint_parameters; ``imageProcessorTileSize`` / ``imageProcessorTileOverlap`` (one number n) ->
        (n, n); ``imageProcessorTileFormat`` / ``imageProcessorTileCompression`` (defaults NITF / NONE);
        ``regionOfInterest`` (WKT) -> roi; ``outputs``, or the legacy ``outputBucket`` + ``outputPrefix`` as one S3
        output; ``featureProperties``; ``featureDistillation`` -> feature_distillation_option; ``postProcessing``
        (default: feature distillation with NMS). Other keys (``jobName``, ...) are ignored.

        :param message: Union[Mapping[str, Any], str, bytes] = the message, parsed or as JSON text
        :return: ImageRequest = the checked request
        :raises RequestValidationError: naming the offending field (the message's camelCase key) when the message
            is not a JSON object, a required key is missing, or a value has the wrong type or is out of range
        """
        fields = external.request_fields(message)
        try:
            return cls(**fields)
        except RequestValidationError as err:
            raise external.rename_error(err, given=fields) from err
