"""ImageRequest.from_external_message: the image-queue message (camelCase JSON), on hand-written and generated
messages. Every bad message raises RequestValidationError naming the message key at fault."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_runner.api import ImageRequest, RequestValidationError

BASE: dict[str, Any] = {
    "jobId": "job-1",
    "jobName": "ignored",
    "imageUrls": ["s3://imagery/a.ntf", "s3://imagery/b.ntf"],
    "imageProcessor": {"name": "aircraft", "type": "SM_ENDPOINT"},
}


def test_a_full_message_maps_every_field() -> None:
    message = {
        **BASE,
        "imageReadRole": "arn:aws:iam::1:role/read",
        "imageProcessor": {"name": "aircraft", "type": "HTTP_ENDPOINT", "assumedRole": "arn:aws:iam::1:role/invoke"},
        "imageProcessorParameters": {"CustomAttributes": "a=1"},
        "imageProcessorTileSize": 512,
        "imageProcessorTileOverlap": 32,
        "imageProcessorTileFormat": "GTIFF",
        "imageProcessorTileCompression": "LZW",
        "regionOfInterest": "POLYGON ((0 0, 10 0, 10 10, 0 0))",
        "outputs": [{"type": "S3", "bucket": "out", "prefix": "p/"}, {"type": "Kinesis", "stream": "s"}],
        "featureProperties": [{"modelMetadata": {"name": "m"}}],
        "postProcessing": [{"step": "FEATURE_DISTILLATION", "algorithm": {"algorithmType": "SOFT_NMS"}}],
    }
    request = ImageRequest.from_external_message(json.dumps(message))
    assert (request.job_id, request.image_url) == ("job-1", "s3://imagery/a.ntf")
    assert request.image_id == "job-1:s3://imagery/a.ntf"
    assert request.image_read_role == "arn:aws:iam::1:role/read"
    assert (request.model_name, request.model_invoke_mode) == ("aircraft", "HTTP_ENDPOINT")
    assert request.model_invocation_role == "arn:aws:iam::1:role/invoke"
    assert request.model_endpoint_parameters == {"CustomAttributes": "a=1"}
    assert (request.tile_size, request.tile_overlap) == ((512, 512), (32, 32))
    assert (request.tile_format, request.tile_compression) == ("GTIFF", "LZW")
    assert request.roi is not None and request.roi.bounds == (0.0, 0.0, 10.0, 10.0)
    assert request.outputs == message["outputs"] and request.feature_properties == message["featureProperties"]
    assert request.post_processing == message["postProcessing"]


def test_defaults_and_the_legacy_output_bucket() -> None:
    request = ImageRequest.from_external_message(
        {**BASE, "imageProcessor": {"name": "m"}, "outputBucket": "out", "outputPrefix": "job-1/"}
    )
    assert request.model_invoke_mode == "SM_ENDPOINT" and request.model_invocation_role is None
    assert (request.tile_size, request.tile_overlap) == ((1024, 1024), (50, 50))
    assert (request.tile_format, request.tile_compression) == ("NITF", "NONE")
    assert request.outputs == [{"type": "S3", "bucket": "out", "prefix": "job-1/"}]
    assert request.post_processing[0]["step"] == "FEATURE_DISTILLATION"
    assert request.post_processing[0]["algorithm"]["algorithmType"] == "NMS"
    assert request.roi is None and request.model_endpoint_parameters is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"jobId": None}, "jobId"),
        ({"jobId": 7}, "jobId"),
        ({"imageUrls": []}, "imageUrls"),
        ({"imageUrls": "s3://a"}, "imageUrls"),
        ({"imageUrls": None}, "imageUrls"),
        ({"imageProcessor": None}, "imageProcessor"),
        ({"imageProcessor": "aircraft"}, "imageProcessor"),
        ({"imageProcessor": {"type": "SM_ENDPOINT"}}, "imageProcessor.name"),
        ({"imageProcessor": {"name": "m", "assumedRole": 3}}, "imageProcessor.assumedRole"),
        ({"imageProcessorParameters": [1]}, "imageProcessorParameters"),
        ({"imageProcessorTileSize": 0}, "imageProcessorTileSize"),
        ({"imageProcessorTileSize": "big"}, "imageProcessorTileSize"),
        ({"imageProcessorTileSize": True}, "imageProcessorTileSize"),
        ({"imageProcessorTileOverlap": -1}, "imageProcessorTileOverlap"),
        ({"imageProcessorTileSize": 256, "imageProcessorTileOverlap": 256}, "imageProcessorTileOverlap"),
        ({"regionOfInterest": "POLYGON ((oops"}, "regionOfInterest"),
        ({"regionOfInterest": "POLYGON EMPTY"}, "regionOfInterest"),
        ({"outputs": {"type": "S3"}}, "outputs"),
        ({"outputBucket": 5}, "outputBucket"),
        ({"featureProperties": ["x"]}, "featureProperties"),
        ({"postProcessing": "NMS"}, "postProcessing"),
        ({"imageReadRole": ["r"]}, "imageReadRole"),
        ({"imageProcessorTileFormat": 1}, "imageProcessorTileFormat"),
    ],
)
def test_a_bad_key_is_named(change: dict[str, Any], field: str) -> None:
    message = {**BASE, **change}
    with pytest.raises(RequestValidationError) as caught:
        ImageRequest.from_external_message(message)
    assert caught.value.field == field
    assert field in str(caught.value)


def test_a_tile_size_below_the_default_overlap_names_the_tile_size() -> None:
    # found by the generated messages below: the error named imageProcessorTileOverlap, a key the message lacks
    message = {key: value for key, value in BASE.items() if key != "imageProcessorTileOverlap"}
    message["imageProcessorTileSize"] = 1
    with pytest.raises(RequestValidationError) as caught:
        ImageRequest.from_external_message(message)
    assert caught.value.field == "imageProcessorTileSize"
    assert "default overlap" in str(caught.value)


@pytest.mark.parametrize("message", ["not json", "[1, 2]", b"42", 17])
def test_a_message_that_is_no_json_object_is_refused(message: Any) -> None:
    with pytest.raises(RequestValidationError) as caught:
        ImageRequest.from_external_message(message)
    assert caught.value.field == ""


# -- generated messages ------------------------------------------------------------------------------------------

ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
KEYS = [
    "jobId",
    "imageUrls",
    "imageProcessor",
    "imageReadRole",
    "imageProcessorParameters",
    "imageProcessorTileSize",
    "imageProcessorTileOverlap",
    "imageProcessorTileFormat",
    "imageProcessorTileCompression",
    "regionOfInterest",
    "outputs",
    "featureProperties",
    "postProcessing",
    "outputBucket",
    "outputPrefix",
]


@st.composite
def valid_messages(draw: st.DrawFn) -> dict[str, Any]:
    size = draw(st.integers(1, 4096))
    message: dict[str, Any] = {
        "jobId": draw(st.text(st.characters(codec="utf-8"), min_size=1, max_size=30)),
        "imageUrls": [draw(st.text(st.characters(codec="utf-8"), min_size=1, max_size=30))],
        "imageProcessor": {"name": draw(st.text(st.characters(codec="utf-8"), min_size=1, max_size=20))},
    }
    if draw(st.booleans()):
        message["imageProcessorTileSize"] = size
        message["imageProcessorTileOverlap"] = draw(st.integers(0, size - 1))
    if draw(st.booleans()):
        message["imageProcessorParameters"] = draw(st.dictionaries(st.text(max_size=5), ANY_JSON, max_size=3))
    if draw(st.booleans()):
        message["postProcessing"] = draw(st.lists(st.dictionaries(st.text(max_size=5), ANY_JSON, max_size=2)))
    if draw(st.booleans()):
        message["imageProcessor"]["assumedRole"] = draw(st.text(st.characters(codec="utf-8"), max_size=20))
    return message


@settings(max_examples=300, deadline=None)
@given(valid_messages())
def test_generated_valid_messages_are_accepted_and_mapped(message: dict[str, Any]) -> None:
    request = ImageRequest.from_external_message(json.dumps(message))
    assert request.job_id == message["jobId"] and request.image_url == message["imageUrls"][0]
    assert request.image_id == f"{message['jobId']}:{message['imageUrls'][0]}"
    assert request.model_name == message["imageProcessor"]["name"]
    if "imageProcessorTileSize" in message:
        assert request.tile_size == (message["imageProcessorTileSize"],) * 2
        assert request.tile_overlap == (message["imageProcessorTileOverlap"],) * 2
    assert request.model_endpoint_parameters == message.get("imageProcessorParameters")
    assert request.model_invocation_role == (message["imageProcessor"].get("assumedRole") or None)
    if "postProcessing" in message:
        assert request.post_processing == message["postProcessing"]


@settings(max_examples=500, deadline=None)
@given(valid_messages(), st.sampled_from(KEYS), ANY_JSON)
def test_generated_messages_either_build_a_request_or_name_the_bad_key(
    message: dict[str, Any], key: str, value: Any
) -> None:
    message = {**message, key: value}
    try:
        request = ImageRequest.from_external_message(message)
    except RequestValidationError as err:
        assert err.field.split(".")[0] in message, err  # a key of the message (the mutated one, or one it depends on)
        assert err.field in str(err)
        return
    assert isinstance(request, ImageRequest) and request.image_url
