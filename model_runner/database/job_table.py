"""The job table: one item per image job (JobItem) and its repository (JobTable)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

from pynamodb.attributes import UnicodeAttribute

from .attributes import EpochSecondsTTLAttribute, IntegerAttribute
from .ddb_helper import DDBHelper, DDBItem

if TYPE_CHECKING:
    from model_runner.api import ImageRequest


class JobItem(DDBItem):
    """JobItem represents a single item in the job table: the state of one image job.

    The data schema is defined as follows:
    image_id: str = unique identifier for the image associated with the job (hash key)
    job_id: Optional[str] = unique identifier for the job
    image_url: Optional[str] = S3 URL or another source location for the image
    image_read_role: Optional[str] = IAM role ARN for accessing the image from its source
    model_invoke_mode: Optional[str] = mode in which the model is invoked (e.g., batch or streaming)
    start_time: Optional[int] = time in epoch milliseconds when the job started
    expire_time: Optional[int] = time in epoch seconds when the job will expire (the table's TTL attribute)
    end_time: Optional[int] = time in epoch milliseconds when the job ended
    region_success: Optional[int] = current count of regions that have successfully processed for this image
    region_error: Optional[int] = current count of regions that have errored during processing
    region_count: Optional[int] = total count of regions expected for this image
    width: Optional[int] = width of the image in pixels
    height: Optional[int] = height of the image in pixels
    extents: Optional[str] = string representation of the image extents
    tile_size: Optional[str] = size of the tiles used during processing
    tile_overlap: Optional[str] = overlap between tiles during processing
    model_name: Optional[str] = name of the model used for processing
    outputs: Optional[str] = details about the job output
    processing_duration: Optional[int] = time in seconds taken to complete processing
    feature_properties: Optional[str] = additional feature properties or metadata from the image processing
    feature_distillation_option: Optional[str] = the options used in selecting features (e.g., NMS/SOFT_NMS)
    roi_wkt: Optional[str] = a Well-Known Text (WKT) representation of the requested processing bounds
    """

    class Meta:
        billing_mode = "PAY_PER_REQUEST"

    image_id = UnicodeAttribute(hash_key=True)
    job_id = UnicodeAttribute(null=True)
    image_url = UnicodeAttribute(null=True)
    image_read_role = UnicodeAttribute(null=True)
    model_invoke_mode = UnicodeAttribute(null=True)
    start_time = IntegerAttribute(null=True)
    expire_time = EpochSecondsTTLAttribute(null=True)
    end_time = IntegerAttribute(null=True)
    region_success = IntegerAttribute(null=True)
    region_error = IntegerAttribute(null=True)
    region_count = IntegerAttribute(null=True)
    width = IntegerAttribute(null=True)
    height = IntegerAttribute(null=True)
    extents = UnicodeAttribute(null=True)
    tile_size = UnicodeAttribute(null=True)
    tile_overlap = UnicodeAttribute(null=True)
    model_name = UnicodeAttribute(null=True)
    outputs = UnicodeAttribute(null=True)
    processing_duration = IntegerAttribute(null=True)
    feature_properties = UnicodeAttribute(null=True)
    feature_distillation_option = UnicodeAttribute(null=True)
    roi_wkt = UnicodeAttribute(null=True)

    @classmethod
    def from_image_request(cls, image_request: "ImageRequest") -> "JobItem":
        """Create a JobItem from an ImageRequest instance.

        :param image_request: ImageRequest = The image request from which to generate the JobItem.

        :return: JobItem = A new JobItem instance with the relevant fields populated.
        """
        distillation = image_request.feature_distillation_option
        return cls(
            image_id=image_request.image_id,
            job_id=image_request.job_id,
            image_url=image_request.image_url,
            image_read_role=image_request.image_read_role,
            model_name=image_request.model_name,
            model_invoke_mode=str(image_request.model_invoke_mode),
            tile_size=str(tuple(image_request.tile_size)),
            tile_overlap=str(tuple(image_request.tile_overlap)),
            outputs=json.dumps(image_request.outputs),
            feature_properties=json.dumps(image_request.feature_properties),
            feature_distillation_option=json.dumps(distillation) if distillation is not None else None,
            roi_wkt=image_request.roi.wkt if image_request.roi is not None else None,
        )


class JobTable(DDBHelper):
    """JobTable is a class meant to help OSML with accessing and interacting with the image processing jobs we track
    as part of the job status table.

    :param table_name: Optional[str] = the name of the table to interact with; JOB_TABLE when None
    :param kwargs: Any = connection options of :class:`~model_runner.database.ddb_helper.DDBHelper`

    :return: None
    """

    item_class: ClassVar[type[DDBItem]] = JobItem
    table_env_var: ClassVar[str] = "JOB_TABLE"

    def __init__(self, table_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(table_name, **kwargs)
