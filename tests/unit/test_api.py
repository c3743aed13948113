"""Unit tests for model_runner.api: ImageRequest and RegionRequest construction, validation and normalisation."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from shapely.geometry import Point, box

import model_runner.api as api
from model_runner.api import ImageRequest, RegionRequest, RequestValidationError

IMAGE_BASE: dict[str, Any] = {
    "job_id": "job-1",
    "image_id": "job-1:s3://bucket/image.ntf",
    "image_url": "s3://bucket/image.ntf",
    "model_name": "aircraft",
}

REGION_BASE: dict[str, Any] = {
    "image_id": "job-1:s3://bucket/image.ntf",
    "job_id": "job-1",
    "region_bounds": ((0, 0), (2048, 2048)),
}


def image_request(**overrides: Any) -> ImageRequest:
    return ImageRequest(**{**IMAGE_BASE, **overrides})


def region_request(**overrides: Any) -> RegionRequest:
    return RegionRequest(**{**REGION_BASE, **overrides})


# --- ImageRequest ---------------------------------------------------------------------------------------------------


def test_image_request_defaults() -> None:
    request = image_request()
    assert request.image_read_role is None
    assert request.model_invoke_mode == "SM_ENDPOINT"
    assert request.tile_size == (1024, 1024)
    assert request.tile_overlap == (50, 50)
    assert request.tile_format == "NITF"
    assert request.tile_compression == "NONE"
    assert request.outputs == []
    assert request.feature_properties == []
    assert request.feature_distillation_option is None
    assert request.roi is None


def test_image_request_list_defaults_are_not_shared() -> None:
    first, second = image_request(), image_request()
    first.outputs.append({"type": "S3"})
    assert second.outputs == []


def test_image_request_keeps_all_valid_values() -> None:
    outputs = [{"type": "S3", "bucket": "results", "prefix": "job-1/"}]
    properties = [{"modelMetadata": {"version": "1"}}]
    distillation = {"algorithm_type": "NMS", "iou_threshold": 0.75}
    request = image_request(
        image_read_role="arn:aws:iam::012345678910:role/read",
        model_invoke_mode="HTTP_ENDPOINT",
        tile_size=(512, 256),
        tile_overlap=(0, 255),
        tile_format="GTIFF",
        tile_compression="LZW",
        outputs=outputs,
        feature_properties=properties,
        feature_distillation_option=distillation,
    )
    assert request.image_read_role == "arn:aws:iam::012345678910:role/read"
    assert request.tile_size == (512, 256)
    assert request.tile_overlap == (0, 255)
    assert request.outputs == outputs
    assert request.feature_properties == properties
    assert request.feature_distillation_option == distillation


def test_image_request_error_message_names_class_field_and_value() -> None:
    with pytest.raises(RequestValidationError) as raised:
        image_request(tile_size=(0, 5))
    assert str(raised.value) == "ImageRequest.tile_size: expected two positive ints, got (0, 5)"
    assert raised.value.field == "tile_size"
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("job_id", ""),
        ("job_id", None),
        ("job_id", 17),
        ("image_id", ""),
        ("image_url", ""),
        ("image_url", b"s3://bucket/image.ntf"),
        ("image_read_role", 5),
        ("model_name", ""),
        ("model_invoke_mode", ""),
        ("tile_size", (1024,)),
        ("tile_size", (1024, 1024, 1)),
        ("tile_size", (1024, -1)),
        ("tile_size", (1024.0, 1024)),
        ("tile_size", (True, 1024)),
        ("tile_size", "1024x1024"),
        ("tile_size", None),
        ("tile_overlap", (-1, 0)),
        ("tile_overlap", (1024, 0)),
        ("tile_overlap", (0, 2000)),
        ("tile_overlap", (5.5, 0)),
        ("tile_overlap", 50),
        ("tile_format", ""),
        ("tile_compression", None),
        ("outputs", {"type": "S3"}),
        ("outputs", [{"type": "S3"}, "kinesis"]),
        ("outputs", None),
        ("feature_properties", ["x"]),
        ("feature_distillation_option", ["NMS"]),
        ("roi", "POLYGON ((0 0, 1 0"),
        ("roi", "not wkt at all"),
        ("roi", "POLYGON EMPTY"),
        ("roi", {"type": "Point", "coordinates": [1, 2]}),
        ("roi", 42),
    ],
)
def test_image_request_invalid_field_is_named(field: str, value: Any) -> None:
    with pytest.raises(RequestValidationError) as raised:
        image_request(**{field: value})
    assert raised.value.field == field
    assert str(raised.value).startswith(f"ImageRequest.{field}: ")


def test_image_request_model_name_is_required() -> None:
    base = {k: v for k, v in IMAGE_BASE.items() if k != "model_name"}
    with pytest.raises(RequestValidationError) as raised:
        ImageRequest(**base)
    assert raised.value.field == "model_name"


def test_tile_overlap_is_checked_against_the_matching_dimension() -> None:
    assert image_request(tile_size=(100, 200), tile_overlap=(50, 150)).tile_overlap == (50, 150)
    with pytest.raises(RequestValidationError, match=r"tile_overlap.*smaller than tile_size \(100, 200\)"):
        image_request(tile_size=(100, 200), tile_overlap=(150, 50))


def test_image_request_lists_become_tuples() -> None:
    request = image_request(tile_size=[512, 512], tile_overlap=[32, 16], outputs=({"type": "S3"},))
    assert request.tile_size == (512, 512)
    assert isinstance(request.tile_size, tuple)
    assert request.tile_overlap == (32, 16)
    assert isinstance(request.tile_overlap, tuple)
    assert request.outputs == [{"type": "S3"}]
    assert isinstance(request.outputs, list)


def test_empty_image_read_role_means_none() -> None:
    assert image_request(image_read_role="").image_read_role is None


def test_roi_wkt_is_parsed() -> None:
    request = image_request(roi="POLYGON ((0 0, 10 0, 10 10, 0 10, 0 0))")
    assert request.roi is not None
    assert request.roi.equals(box(0, 0, 10, 10))


def test_roi_shapely_geometry_is_kept() -> None:
    roi = Point(1, 2).buffer(5)
    assert image_request(roi=roi).roi is roi


def test_bad_roi_wkt_message_shows_the_input() -> None:
    with pytest.raises(RequestValidationError, match=r"ImageRequest\.roi: .*'POLYGON \(\(0 0, 1 0'"):
        image_request(roi="POLYGON ((0 0, 1 0")


def test_image_request_from_dict() -> None:
    request = ImageRequest.from_dict({**IMAGE_BASE, "tile_size": [256, 256], "roi": "POINT (3 4)"})
    assert request == image_request(tile_size=(256, 256), roi=Point(3, 4))


def test_image_request_from_dict_names_all_unknown_keys() -> None:
    with pytest.raises(RequestValidationError) as raised:
        ImageRequest.from_dict({**IMAGE_BASE, "tileSize": [256, 256], "imageURL": "s3://x"})
    assert raised.value.field == "imageURL, tileSize"
    assert "'imageURL'" in str(raised.value)
    assert "'tileSize'" in str(raised.value)


def test_image_request_from_dict_names_the_missing_field() -> None:
    with pytest.raises(RequestValidationError) as raised:
        ImageRequest.from_dict({k: v for k, v in IMAGE_BASE.items() if k != "image_url"})
    assert raised.value.field == "image_url"
    assert str(raised.value) == "ImageRequest.image_url: required field is missing"


def test_image_request_from_dict_rejects_non_mapping() -> None:
    with pytest.raises(RequestValidationError, match="ImageRequest: expected a dict, got list"):
        ImageRequest.from_dict([("job_id", "x")])  # type: ignore[arg-type]


def test_image_request_from_dict_validates_values() -> None:
    with pytest.raises(RequestValidationError) as raised:
        ImageRequest.from_dict({**IMAGE_BASE, "tile_overlap": [2000, 0]})
    assert raised.value.field == "tile_overlap"


# --- RegionRequest --------------------------------------------------------------------------------------------------


def test_region_request_keyword_construction_and_defaults() -> None:
    request = RegionRequest(image_id="img", job_id="job-1", region_bounds=((0, 0), (2048, 2048)))
    assert request.region_id == "((0, 0), (2048, 2048))-job-1"
    assert request.image_url == ""
    assert request.image_read_role is None
    assert request.model_name == ""
    assert request.model_invoke_mode == "SM_ENDPOINT"
    assert request.tile_size == (1024, 1024)
    assert request.tile_overlap == (50, 50)
    assert request.tile_format == "NITF"
    assert request.tile_compression == "NONE"


def test_region_request_lists_become_nested_tuples_and_region_id_uses_them() -> None:
    request = region_request(region_bounds=[[512, 1024], [256, 128]], tile_size=[256, 128], tile_overlap=[0, 8])
    assert request.region_bounds == ((512, 1024), (256, 128))
    assert isinstance(request.region_bounds, tuple)
    assert all(isinstance(part, tuple) for part in request.region_bounds)
    assert request.tile_size == (256, 128)
    assert request.tile_overlap == (0, 8)
    assert request.region_id == "((512, 1024), (256, 128))-job-1"


def test_region_request_explicit_region_id_is_kept() -> None:
    assert region_request(region_id="region-7").region_id == "region-7"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("image_id", ""),
        ("job_id", None),
        ("region_id", 7),
        ("image_url", None),
        ("image_read_role", ["arn"]),
        ("model_name", None),
        ("model_invoke_mode", ""),
        ("tile_size", (0, 1024)),
        ("tile_overlap", (1024, 0)),
        ("tile_format", ""),
        ("tile_compression", 3),
        ("region_bounds", ((-1, 0), (10, 10))),
        ("region_bounds", ((0, 0), (0, 10))),
        ("region_bounds", ((0, 0), (10, -10))),
        ("region_bounds", ((0, 0, 0), (10, 10))),
        ("region_bounds", ((0, 0),)),
        ("region_bounds", (0, 0, 10, 10)),
        ("region_bounds", ((0.5, 0), (10, 10))),
        ("region_bounds", ((False, 0), (10, 10))),
        ("region_bounds", None),
    ],
)
def test_region_request_invalid_field_is_named(field: str, value: Any) -> None:
    with pytest.raises(RequestValidationError) as raised:
        region_request(**{field: value})
    assert raised.value.field == field
    assert str(raised.value).startswith(f"RegionRequest.{field}: ")


def test_region_bounds_error_message_shows_the_value() -> None:
    with pytest.raises(RequestValidationError) as raised:
        region_request(region_bounds=((-1, 0), (10, 10)))
    assert "((-1, 0), (10, 10))" in str(raised.value)


def test_region_request_from_dict() -> None:
    request = RegionRequest.from_dict({**REGION_BASE, "region_bounds": [[0, 0], [2048, 2048]], "model_name": "m"})
    assert request == region_request(model_name="m")


def test_region_request_from_dict_rejects_unknown_and_missing_keys() -> None:
    with pytest.raises(RequestValidationError) as unknown:
        RegionRequest.from_dict({**REGION_BASE, "roi": "POINT (1 1)"})
    assert unknown.value.field == "roi"
    with pytest.raises(RequestValidationError) as missing:
        RegionRequest.from_dict({k: v for k, v in REGION_BASE.items() if k != "region_bounds"})
    assert missing.value.field == "region_bounds"


# --- the error and the package --------------------------------------------------------------------------------------


def test_request_validation_error_survives_pickling() -> None:
    with pytest.raises(RequestValidationError) as raised:
        image_request(job_id="")
    copy = pickle.loads(pickle.dumps(raised.value))
    assert copy.field == "job_id"
    assert str(copy) == str(raised.value)


def test_api_exports() -> None:
    assert set(api.__all__) == {"ImageRequest", "RegionRequest", "RequestValidationError"}
    assert issubclass(api.RequestValidationError, ValueError)
