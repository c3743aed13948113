"""The image-queue message (camelCase JSON) and how it maps onto the fields of an ImageRequest.

Every problem raises :class:`~model_runner.api.errors.RequestValidationError` whose ``field`` is the message's own
key (``imageProcessorTileSize``, ``imageProcessor.name``), so a client can fix its message without knowing our
field names.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from model_runner.api.errors import RequestValidationError

OWNER = "ImageRequest message"

#: The post-processing of a request that names none: feature distillation with non-maximum suppression.
DEFAULT_NMS_IOU_THRESHOLD = 0.75

#: Our field names and the message keys they come from, to name the key when the request refuses a value.
FIELD_KEYS: dict[str, str] = {
    "job_id": "jobId",
    "image_id": "jobId",
    "image_url": "imageUrls",
    "image_read_role": "imageReadRole",
    "model_name": "imageProcessor.name",
    "model_invoke_mode": "imageProcessor.type",
    "model_invocation_role": "imageProcessor.assumedRole",
    "model_endpoint_parameters": "imageProcessorParameters",
    "tile_size": "imageProcessorTileSize",
    "tile_overlap": "imageProcessorTileOverlap",
    "tile_format": "imageProcessorTileFormat",
    "tile_compression": "imageProcessorTileCompression",
    "roi": "regionOfInterest",
    "outputs": "outputs",
    "feature_properties": "featureProperties",
    "feature_distillation_option": "featureDistillation",
    "post_processing": "postProcessing",
}


def default_post_processing() -> list[dict[str, Any]]:
    """Return the post-processing of a request that names none (a new list each time).

    :return: List[Dict[str, Any]] = one feature distillation step with NMS
    """
    return [
        {
            "step": "FEATURE_DISTILLATION",
            "algorithm": {"algorithmType": "NMS", "iouThreshold": DEFAULT_NMS_IOU_THRESHOLD},
        }
    ]


def _fail(key: str, reason: str) -> RequestValidationError:
    return RequestValidationError(key, f"{OWNER}.{key}: {reason}")


def _text(message: Mapping[str, Any], key: str, *, required: bool = False, label: str | None = None) -> str | None:
    name = label or key
    value = message.get(key)
    if value is None:
        if required:
            raise _fail(name, "required key is missing")
        return None
    if not isinstance(value, str) or (required and not value):
        raise _fail(name, f"expected a {'non-empty ' if required else ''}string, got {value!r}")
    return value


def _count(message: Mapping[str, Any], key: str, minimum: int) -> int | None:
    value = message.get(key)
    if value is None:
        return None
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if number is None or number < minimum:
        kind = "a positive" if minimum else "a non-negative"
        raise _fail(key, f"expected {kind} whole number of pixels, got {value!r}")
    return number


def _dicts(message: Mapping[str, Any], key: str) -> list[dict[str, Any]] | None:
    value = message.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise _fail(key, f"expected a list of objects, got {value!r}")
    return value


def _object(message: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = message.get(key)
    if value is not None and not isinstance(value, dict):
        raise _fail(key, f"expected an object, got {value!r}")
    return value


def parse(message: Mapping[str, Any] | str | bytes) -> Mapping[str, Any]:
    """Return the message as a mapping, parsing JSON text.

    :param message: Union[Mapping[str, Any], str, bytes] = the message
    :return: Mapping[str, Any] = the message
    :raises RequestValidationError: (field "") when it is not a JSON object
    """
    if isinstance(message, (str, bytes, bytearray)):
        try:
            message = json.loads(message)
        except ValueError as err:
            raise RequestValidationError("", f"{OWNER}: not valid JSON: {err}") from err
    if not isinstance(message, Mapping):
        raise RequestValidationError("", f"{OWNER}: expected a JSON object, got {type(message).__name__}")
    return message


def request_fields(message: Mapping[str, Any] | str | bytes) -> dict[str, Any]:
    """Map an image-queue message onto ImageRequest keyword arguments, checking each key's shape.

    :param message: Union[Mapping[str, Any], str, bytes] = the message, parsed or as JSON text
    :return: Dict[str, Any] = the keyword arguments (keys absent from the message are left to the defaults)
    :raises RequestValidationError: naming the message key at fault
    """
    data = parse(message)
    job_id = _text(data, "jobId", required=True)
    urls = data.get("imageUrls")
    if urls is None:
        raise _fail("imageUrls", "required key is missing")
    if not isinstance(urls, list) or not urls or not isinstance(urls[0], str) or not urls[0]:
        raise _fail("imageUrls", f"expected a list whose first item is a non-empty string, got {urls!r}")
    processor = data.get("imageProcessor")
    if processor is None:
        raise _fail("imageProcessor", "required key is missing")
    if not isinstance(processor, dict):
        raise _fail("imageProcessor", f"expected an object, got {processor!r}")
    fields: dict[str, Any] = {
        "job_id": job_id,
        "image_id": f"{job_id}:{urls[0]}",
        "image_url": urls[0],
        "model_name": _text(processor, "name", required=True, label="imageProcessor.name"),
    }
    optional: dict[str, Any] = {
        "image_read_role": _text(data, "imageReadRole"),
        "model_invoke_mode": _text(processor, "type", label="imageProcessor.type"),
        "model_invocation_role": _text(processor, "assumedRole", label="imageProcessor.assumedRole"),
        "model_endpoint_parameters": _object(data, "imageProcessorParameters"),
        "tile_format": _text(data, "imageProcessorTileFormat"),
        "tile_compression": _text(data, "imageProcessorTileCompression"),
        "roi": _text(data, "regionOfInterest"),
        "feature_properties": _dicts(data, "featureProperties"),
        "feature_distillation_option": _object(data, "featureDistillation"),
        "post_processing": _dicts(data, "postProcessing"),
    }
    size = _count(data, "imageProcessorTileSize", 1)
    if size is not None:
        optional["tile_size"] = (size, size)
    overlap = _count(data, "imageProcessorTileOverlap", 0)
    if overlap is not None:
        optional["tile_overlap"] = (overlap, overlap)
    outputs = _dicts(data, "outputs")
    if outputs is None and data.get("outputBucket") is not None:
        bucket = _text(data, "outputBucket", required=True)
        prefix = _text(data, "outputPrefix") or ""
        outputs = [{"type": "S3", "bucket": bucket, "prefix": prefix}]
    optional["outputs"] = outputs
    fields.update({name: value for name, value in optional.items() if value is not None})
    return fields


def rename_error(err: RequestValidationError, given: Collection[str] = ()) -> RequestValidationError:
    """Return the error of a refused request field, renamed after the message key the field came from.

    A default overlap refused next to a tile size the message gives names the tile size: the message has no overlap
    key to name.

    :param err: RequestValidationError = the error raised by ImageRequest, naming our field
    :param given: Collection[str] = the request fields the message gave (the others took their defaults)
    :return: RequestValidationError = the same problem, naming the message key
    """
    reason = err.message.split(": ", 1)[1] if ": " in err.message else err.message
    if err.field == "tile_overlap" and "tile_overlap" not in given and "tile_size" in given:
        return _fail(FIELD_KEYS["tile_size"], f"{reason} (the default overlap): give a larger tile size or an overlap")
    return _fail(FIELD_KEYS.get(err.field, err.field), reason)
