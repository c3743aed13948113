"""The job table: one item per image job (JobItem) and its repository (JobTable)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import TYPE_CHECKING, Any, ClassVar, cast

from pynamodb.attributes import BinarySetAttribute, UnicodeSetAttribute
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from .attributes import EpochSecondsTTLAttribute, IntegerAttribute, UnicodeAttribute
from .ddb_helper import DDBHelper, DDBItem, now_millis
from .exceptions import (
    CONDITION_FAILED,
    CompleteRegionException,
    DatabaseError,
    EndImageException,
    GetImageRequestItemException,
    IsImageCompleteException,
    StartImageException,
    UpdateImageException,
)

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
    completed_regions: Optional[Set[str]] = digests of the region ids already counted by
    :meth:`JobTable.complete_region_request`: an 8-byte BLAKE2b digest as 11 characters of unpadded URL-safe base64
    (a string set stored as ``crs``, so that a classic worker, whose patched JSON parser cannot read binary values,
    reads the job); bookkeeping of the table, never written back by :meth:`JobTable.update_image_request`
    completed_regions_binary: Optional[Set[bytes]] = the same digests as bytes (stored as ``crd``), as an earlier
    version of this package stored them; read and checked, never written
    aggregated_by: Optional[str] = the worker that claimed the aggregation (:meth:`JobTable.claim_aggregation`)
    """

    class Meta:
        billing_mode = "PAY_PER_REQUEST"

    classic_fields: ClassVar[tuple[str, ...]] = (
        "image_id",
        "job_id",
        "image_url",
        "image_read_role",
        "model_invoke_mode",
        "start_time",
        "expire_time",
        "end_time",
        "region_success",
        "region_error",
        "region_count",
        "width",
        "height",
        "extents",
        "tile_size",
        "tile_overlap",
        "model_name",
        "outputs",
        "processing_duration",
        "feature_properties",
        "feature_distillation_option",
        "roi_wkt",
    )

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
    completed_regions = UnicodeSetAttribute(null=True, attr_name="crs")
    completed_regions_binary = BinarySetAttribute(legacy_encoding=False, null=True, attr_name="crd")
    aggregated_by = UnicodeAttribute(null=True)

    @classmethod
    def from_image_request(cls, image_request: ImageRequest) -> JobItem:
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


#: Bytes of the digest that stands for a region id in ``completed_regions``: as 11 characters of base64, 10,000
#: regions take about 110 KB, and two ids of one job share a digest with a probability of about n^2 / 2^65 (3e-12 for
#: 10,000 regions).
REGION_DIGEST_SIZE = 8

#: Attributes :meth:`JobTable.update_image_request` never writes: they change only atomically.
ATOMIC_ATTRIBUTES = ("region_success", "region_error", "completed_regions", "completed_regions_binary", "aggregated_by")


def region_digest(region_id: str) -> bytes:
    """Return the digest that stands for a region id (its text form is :func:`region_token`).

    :param region_id: str = the region id
    :return: bytes = its 8-byte BLAKE2b digest
    :raises TypeError: when the region id is not a string
    :raises ValueError: when it is not valid UTF-8 text (lone surrogates)
    """
    if not isinstance(region_id, str):
        raise TypeError(f"region_id: expected a string, got {type(region_id).__name__}: {region_id!r}")
    return hashlib.blake2b(region_id.encode("utf-8"), digest_size=REGION_DIGEST_SIZE).digest()


def region_token(region_id: str) -> str:
    """Return the string that stands for a region id in a job's ``completed_regions``.

    :param region_id: str = the region id
    :return: str = its digest as 11 characters of unpadded URL-safe base64
    :raises TypeError: when the region id is not a string
    :raises ValueError: when it is not valid UTF-8 text (lone surrogates)
    """
    return base64.urlsafe_b64encode(region_digest(region_id)).rstrip(b"=").decode("ascii")


class JobTable(DDBHelper):
    """JobTable is a class meant to help OSML with accessing and interacting with the image processing jobs we track
    as part of the job status table.

    Every operation is one request (plus a consistent read where noted), counters change only through atomic ADD,
    and no operation but :meth:`start_image_request` creates a job.

    :param table_name: Optional[str] = the name of the table to interact with; JOB_TABLE when None
    :param kwargs: Any = connection options of :class:`~model_runner.database.ddb_helper.DDBHelper`

    :return: None
    """

    item_class: ClassVar[type[DDBItem]] = JobItem
    table_env_var: ClassVar[str] = "JOB_TABLE"

    def __init__(self, table_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(table_name, **kwargs)

    # -- helpers -----------------------------------------------------------------------------------------------------

    def _new_job(self, image_id: str) -> JobItem:
        """Return a bound JobItem holding only the key (the target of an UpdateItem).

        :param image_id: str = the job's image id
        :return: JobItem = the bound item
        """
        return cast(JobItem, self.model(image_id))

    def _read(self, image_id: str, exc_class: type[DatabaseError], action: str) -> JobItem | None:
        """Read a job with a strongly consistent get.

        :param image_id: str = the job's image id
        :param exc_class: Type[DatabaseError] = the exception raised when the read fails
        :param action: str = what the caller does, for the message
        :return: Optional[JobItem] = the stored job, or None when there is none
        :raises DatabaseError: ``exc_class`` when the read fails
        """
        return cast("JobItem | None", self._read_item(exc_class, action, image_id))

    # -- the job API -------------------------------------------------------------------------------------------------

    def start_image_request(self, image_request_item: JobItem) -> JobItem:
        """Start an image processing request for given image_id, this should be the first record for this image in the
        table.

        One conditional PutItem writes the item's set attributes with start_time (epoch ms, now), expire_time,
        processing_duration 0, region_success 0 and region_error 0, only when the job does not exist yet. When it
        exists (a redelivered request, or our own retry after a lost response) the stored job is left untouched,
        counters and start_time included, and returned. The caller's item is not modified: use the returned one.

        :param image_request_item: JobItem = the job to start; image_id is required

        :return: JobItem = the stored job
        :raises StartImageException: when the request fails
        """
        job = self._new_job(image_request_item.image_id)
        job.attribute_values = {k: v for k, v in image_request_item.attribute_values.items() if v is not None}
        job.start_time = now_millis()
        job.expire_time = self.expire_time()
        job.processing_duration = 0
        job.region_success = 0
        job.region_error = 0
        job.attribute_values.pop("completed_regions", None)
        job.attribute_values.pop("completed_regions_binary", None)
        job.attribute_values.pop("aggregated_by", None)
        key = {"image_id": job.image_id}
        try:
            self._run(
                lambda: job.save(condition=JobItem.image_id.does_not_exist()),
                StartImageException,
                "start image request",
                key,
            )
            return job
        except DatabaseError as err:
            if err.code != CONDITION_FAILED:
                raise
            stored = self._read(job.image_id, StartImageException, "start image request (read existing job)")
            if stored is None:  # deleted or expired between the two requests
                raise self.error(StartImageException, "start image request (job vanished)", key, err) from err
            return stored

    def complete_region_request(self, image_id: str, error: bool, region_id: str | None = None) -> JobItem:
        """Update the image job to reflect that a region has succeeded or failed.

        One UpdateItem ADDs 1 to region_success (or region_error when ``error``), on an existing job only, and returns
        the job as stored after it.

        With ``region_id`` the region is counted exactly once: the same UpdateItem adds the region's digest to
        ``completed_regions`` on condition that it is not there yet. A completion of a region already counted (a
        redelivered message, or our own retry after a lost response) changes nothing and returns the stored job, which
        may then already be complete: aggregation must be safe to run again. A job whose regions an earlier version of
        this package counted in the binary ``crd`` set keeps them counted: the condition checks both sets.

        A region that a classic worker counted (it keeps no trace of which region it counted) and that is then
        redelivered to a worker of this package is counted again: the job item cannot tell it apart from a region
        not counted yet (see docs/migrating.md, rolling upgrade).

        Without ``region_id`` the count is at least once: when a response is lost and the request is retried, the
        region can be counted twice.

        :param image_id: str = the unique identifier for the image we want to update
        :param error: bool = if there was an error processing the region, is true else false
        :param region_id: Optional[str] = the region completed; when given, it is counted only once

        :return: JobItem = the job as stored after the update
        :raises CompleteRegionException: when the job does not exist or the request fails
        """
        counter = JobItem.region_error if error else JobItem.region_success
        actions: list[Action] = [counter.add(1)]
        condition: Condition = JobItem.image_id.exists()
        if region_id is not None:
            digest = region_digest(region_id)
            actions.append(JobItem.completed_regions.add({region_token(region_id)}))
            condition = (
                condition
                & ~JobItem.completed_regions.contains(region_token(region_id))
                & ~JobItem.completed_regions_binary.contains(digest)
            )
        job = self._new_job(image_id)
        failed = self._conditional_update(job, actions, condition, CompleteRegionException, "complete region request")
        if failed is None:
            return job
        stored = self._read(image_id, CompleteRegionException, "complete region request (read job)")
        if stored is None or region_id is None:
            raise self.error(
                CompleteRegionException, "complete region request (job does not exist)", {"image_id": image_id}, failed
            ) from failed
        return stored

    def claim_aggregation(self, image_id: str, worker_id: str) -> bool:
        """Claim the aggregation of a complete job for one worker, once for all workers.

        A redelivered completion of the last region returns the complete job to a second worker too; this claim
        decides which of them aggregates. One conditional UpdateItem sets ``aggregated_by`` to ``worker_id`` when it is
        unset or already ``worker_id``: the first claimant wins, and its own retry after a lost response wins again.
        A worker that crashed after claiming leaves the claim in place; an operator can clear ``aggregated_by`` (or
        the redelivered message can be processed by the same ``worker_id``) to aggregate again.

        :param image_id: str = the job
        :param worker_id: str = a name unique to the claiming worker (or to the message it processes)

        :return: bool = True when this worker holds the aggregation, False when another worker does
        :raises CompleteRegionException: when the job does not exist or the request fails
        """
        if not isinstance(worker_id, str) or not worker_id:
            raise TypeError(f"worker_id must be a non-empty string, got {worker_id!r}")
        owner = JobItem.aggregated_by
        condition = JobItem.image_id.exists() & (owner.does_not_exist() | (owner == worker_id))
        job = self._new_job(image_id)
        failed = self._conditional_update(
            job, [owner.set(worker_id)], condition, CompleteRegionException, "claim aggregation"
        )
        if failed is None:
            return True
        stored = self._read(image_id, CompleteRegionException, "claim aggregation (read job)")
        if stored is None:
            raise self.error(
                CompleteRegionException, "claim aggregation (job does not exist)", {"image_id": image_id}, failed
            ) from failed
        return False

    @staticmethod
    def is_image_request_complete(image_request_item: JobItem) -> bool:
        """Tell whether every region of a job has been counted, as a success or an error.

        :param image_request_item: JobItem = the job, as returned by this table

        :return: bool = True when region_success + region_error reaches region_count
        :raises IsImageCompleteException: when region_count, region_success or region_error is not set
        """
        region_count = image_request_item.region_count
        success = image_request_item.region_success
        errors = image_request_item.region_error
        if region_count is None or success is None or errors is None:
            missing = [
                name
                for name, value in (
                    ("region_count", region_count),
                    ("region_success", success),
                    ("region_error", errors),
                )
                if value is None
            ]
            raise IsImageCompleteException(
                f"cannot tell whether job {image_request_item.image_id} is complete: {', '.join(missing)} not set",
                key={"image_id": image_request_item.image_id},
            )
        return success + errors >= region_count

    def end_image_request(self, image_id: str) -> JobItem:
        """Stop an image processing job for given image_id and record the time the job ended, this should be the last
        record for this image in the table.

        DynamoDB cannot compute seconds from a stored start time in milliseconds, so this reads the job (consistent
        get) and then sends one UpdateItem that SETs end_time (epoch ms, now) and processing_duration (seconds since
        the stored start_time), on condition that the job exists and its start_time is still the one read (read again
        and retried when it changed in between). No counter is written. A job without start_time gets end_time only.

        :param image_id: str = the unique identifier for the image we want to stop processing

        :return: JobItem = the job as stored after the update
        :raises EndImageException: when the job does not exist or the request fails
        """
        key = {"image_id": image_id}
        for _ in range(5):
            stored = self._read(image_id, EndImageException, "end image request (read job)")
            if stored is None:
                raise self.error(EndImageException, "end image request (job does not exist)", key, None)
            actions: list[Action] = [JobItem.end_time.set(now_millis())]
            condition: Condition = JobItem.image_id.exists()
            if stored.start_time is None:
                condition = condition & JobItem.start_time.does_not_exist()
            else:
                actions.append(JobItem.processing_duration.set(self.get_processing_duration(int(stored.start_time))))
                condition = condition & (JobItem.start_time == stored.start_time)
            job = self._new_job(image_id)
            if self._conditional_update(job, actions, condition, EndImageException, "end image request") is None:
                return job
        raise self.error(EndImageException, "end image request (start_time kept changing)", key, None)

    def get_image_request(self, image_id: str) -> JobItem:
        """Get a JobItem object from the table based on the image_id provided (strongly consistent read).

        :param image_id: str = the unique identifier for the image we want to start processing

        :return: JobItem = the stored job
        :raises GetImageRequestItemException: when the job does not exist or the request fails
        """
        stored = self._read(image_id, GetImageRequestItemException, "get image request")
        if stored is None:
            raise self.error(
                GetImageRequestItemException, "get image request (job does not exist)", {"image_id": image_id}, None
            )
        return stored

    def update_image_request(self, image_request_item: JobItem) -> JobItem:
        """Write the attributes set on a job item to the stored job, in one UpdateItem.

        Only attributes that are set (not None) are written; region_success, region_error and completed_regions never
        are (they change only atomically), so an item read earlier and written back loses no completion. The job must
        exist: an update never creates one.

        :param image_request_item: JobItem = the job, with the attributes to write set

        :return: JobItem = the job as stored after the update
        :raises UpdateImageException: when the job does not exist or the request fails
        """
        image_id = image_request_item.image_id
        actions = self.actions_for(image_request_item, exclude=ATOMIC_ATTRIBUTES)
        if not actions:
            stored = self._read(image_id, UpdateImageException, "update image request (nothing to write)")
            if stored is None:
                raise self.error(
                    UpdateImageException, "update image request (job does not exist)", {"image_id": image_id}, None
                )
            return stored
        job = self._new_job(image_id)
        failed = self._conditional_update(
            job, actions, JobItem.image_id.exists(), UpdateImageException, "update image request"
        )
        if failed is not None:
            raise self.error(
                UpdateImageException, "update image request (job does not exist)", {"image_id": image_id}, failed
            ) from failed
        return job

    @staticmethod
    def get_processing_duration(start_time: int) -> int:
        """Return the whole seconds elapsed since a start time.

        :param start_time: int = the start time in epoch milliseconds

        :return: int = seconds since then
        """
        return int(time.time() - start_time / 1000)
