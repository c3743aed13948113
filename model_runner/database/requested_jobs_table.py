"""The requested-jobs table of a capacity-aware scheduler: one record per outstanding image request and endpoint.

The scheduler (see docs/scheduler.md) records each image request when it is queued (:meth:`RequestedJobsTable.
add_new_request`), starts attempts under an optimistic lock (:meth:`RequestedJobsTable.start_next_attempt`), counts
completed regions exactly once (:meth:`RequestedJobsTable.complete_region`) and deletes the record when the job is
done (:meth:`RequestedJobsTable.complete_request`). Records carry no ``expire_time``: they are deleted explicitly.

The stored item is shared with code that reads it with raw boto3, so its names and types are those of upstream
OversightML Model Runner: ``endpoint_id`` (partition key), ``job_id`` (sort key), ``request_time``,
``request_payload`` (a map), ``last_attempt``, ``num_attempts``, ``regions_complete`` (a list of strings) and
``region_count`` (absent when unknown). One bookkeeping attribute of ours, ``attempt_token``, lets a
:meth:`RequestedJobsTable.start_next_attempt` whose response was lost tell its own write from another worker's;
readers ignore it.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, cast

from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from model_runner.api import ImageRequest

from .attributes import IntegerAttribute, NativeListAttribute, NativeMapAttribute, UnicodeAttribute, to_native
from .ddb_helper import DDBHelper, DDBItem
from .exceptions import CONDITION_FAILED, DatabaseError, RequestedJobsException, error_code
from .retry import THROTTLING_CODES, call_with_retry

#: Region ids up to this many bytes of UTF-8 are stored in ``regions_complete`` as they are; longer ones as a digest.
MAX_VERBATIM_REGION_ID_BYTES = 12

#: Bytes of the BLAKE2b digest that stands for a longer region id (16 characters of base64url).
REGION_DIGEST_BYTES = 12

#: The prefix of a digest in ``regions_complete`` (a region id of at most 12 bytes can never look like one: a
#: digest is 17 characters long).
REGION_DIGEST_PREFIX = "#"


def region_key(region_id: str) -> str:
    """Return what ``regions_complete`` holds for a region: the id itself, or ``#`` + a digest for a long id.

    Region ids of at most :data:`MAX_VERBATIM_REGION_ID_BYTES` bytes are kept as they are. Longer ones (the derived
    ``"((0, 0), (2048, 2048))-<job id>"`` of RegionRequest, about 60 bytes) become ``#`` + 16 characters (a 96-bit
    BLAKE2b digest, base64url): 10,000 regions then take about 180 KB of the 400 KB item bound instead of 610 KB, and
    two ids of one job share a digest with a probability of about n^2 / 2^97 (1e-21 for 10,000 regions).

    :param region_id: str = the region id
    :return: str = the entry of ``regions_complete`` that stands for it
    :raises TypeError: when the region id is not a non-empty string
    """
    if not isinstance(region_id, str) or not region_id:
        raise TypeError(f"region_id: expected a non-empty string, got {region_id!r}")
    encoded = region_id.encode("utf-8")
    if len(encoded) <= MAX_VERBATIM_REGION_ID_BYTES:
        return region_id
    digest = hashlib.blake2b(encoded, digest_size=REGION_DIGEST_BYTES).digest()
    return REGION_DIGEST_PREFIX + base64.urlsafe_b64encode(digest).decode("ascii")


def request_payload(request: ImageRequest) -> dict[str, Any]:
    """Return an image request as the ``request_payload`` map: one entry per field, None values left out.

    Tuples become lists; the region of interest is stored as WKT text (upstream cannot store it at all).

    :param request: ImageRequest = the request
    :return: Dict[str, Any] = field name to value
    """
    payload: dict[str, Any] = {}
    for f in dataclasses.fields(request):
        value = getattr(request, f.name)
        if value is None:
            continue
        if f.name == "roi":
            value = value.wkt
        payload[f.name] = to_native(value) if isinstance(value, (tuple, list, dict)) else value
    return payload


def request_from_payload(payload: Mapping[str, Any]) -> ImageRequest:
    """Rebuild an image request from a stored ``request_payload`` (numbers may be Decimal; unknown keys ignored).

    :param payload: Mapping[str, Any] = the stored map
    :return: ImageRequest = the request
    :raises RequestValidationError: when the stored payload is not a valid request
    """
    known = {f.name for f in dataclasses.fields(ImageRequest) if f.init}
    return ImageRequest.from_dict({k: to_native(v) for k, v in payload.items() if k in known})


def _number(value: Any) -> Any:
    return None if value is None else to_native(value)


@dataclass
class ImageRequestStatusRecord:
    """The record of one outstanding image request on one model endpoint.

    :param endpoint_id: str = the model endpoint (the request's model_name); partition key
    :param job_id: str = the job; sort key
    :param request_time: int = epoch seconds when the record was created
    :param request_payload: ImageRequest = the request itself
    :param last_attempt: int = epoch seconds of the last started attempt; 0 until the first
    :param num_attempts: int = attempts started so far
    :param regions_complete: List[str] = the regions completed so far, as :func:`region_key` stores them
    :param region_count: Optional[int] = regions of the image; None when unknown
    """

    endpoint_id: str
    job_id: str
    request_time: int
    request_payload: ImageRequest
    last_attempt: int
    num_attempts: int
    regions_complete: list[str] = field(default_factory=list)
    region_count: int | None = None

    @classmethod
    def new_from_request(cls, request: ImageRequest, region_count: int | None = None) -> ImageRequestStatusRecord:
        """Build the record of a new request: now as request_time, no attempt, no completed region.

        :param request: ImageRequest = the request
        :param region_count: Optional[int] = regions of the image, when known
        :return: ImageRequestStatusRecord = the record
        """
        return cls(
            endpoint_id=request.model_name,
            job_id=request.job_id,
            request_time=int(time.time()),
            request_payload=request,
            last_attempt=0,
            num_attempts=0,
            regions_complete=[],
            region_count=region_count,
        )

    def is_region_complete(self, region_id: str) -> bool:
        """Tell whether a region is among the completed ones.

        :param region_id: str = the region id
        :return: bool = True when :func:`region_key` of it is in regions_complete
        """
        return region_key(region_id) in self.regions_complete

    def to_ddb_item(self) -> dict[str, Any]:
        """Return the item as boto3's resource API writes it: numbers as Decimal, None values left out.

        :return: Dict[str, Any] = attribute name to value
        """

        def decimal(value: Any) -> Any:
            if isinstance(value, bool):
                return value
            if isinstance(value, (int, float)):
                return Decimal(str(value))
            if isinstance(value, list):
                return [decimal(v) for v in value]
            if isinstance(value, dict):
                return {k: decimal(v) for k, v in value.items()}
            return value

        item = {
            "endpoint_id": self.endpoint_id,
            "job_id": self.job_id,
            "request_time": self.request_time,
            "request_payload": request_payload(self.request_payload),
            "last_attempt": self.last_attempt,
            "num_attempts": self.num_attempts,
            "regions_complete": list(self.regions_complete),
            "region_count": self.region_count,
        }
        return {k: decimal(v) for k, v in item.items() if v is not None}

    @classmethod
    def from_ddb_item(cls, item: Mapping[str, Any]) -> ImageRequestStatusRecord:
        """Build a record from an item as boto3's resource API reads it (numbers as Decimal; unknown keys ignored).

        :param item: Mapping[str, Any] = attribute name to value
        :return: ImageRequestStatusRecord = the record
        """
        return cls(
            endpoint_id=item["endpoint_id"],
            job_id=item["job_id"],
            request_time=_number(item.get("request_time", 0)),
            request_payload=request_from_payload(item["request_payload"]),
            last_attempt=_number(item.get("last_attempt", 0)),
            num_attempts=_number(item.get("num_attempts", 0)),
            regions_complete=list(item.get("regions_complete") or []),
            region_count=_number(item.get("region_count")),
        )


class RequestedJobsItem(DDBItem):
    """RequestedJobsItem is the stored form of an :class:`ImageRequestStatusRecord` (one item per job and endpoint).

    The data schema is defined as follows:
    endpoint_id: str = the model endpoint, the request's model_name (hash key)
    job_id: str = the job (range key)
    request_time: int = epoch seconds when the record was created
    request_payload: Dict = the image request, one map entry per field
    last_attempt: int = epoch seconds of the last started attempt; 0 until the first
    num_attempts: int = attempts started so far
    regions_complete: List[str] = completed regions (:func:`region_key`)
    region_count: Optional[int] = regions of the image; absent when unknown
    attempt_token: Optional[str] = the token of the call that started the last attempt (bookkeeping)
    """

    class Meta:
        billing_mode = "PAY_PER_REQUEST"

    endpoint_id = UnicodeAttribute(hash_key=True)
    job_id = UnicodeAttribute(range_key=True)
    request_time = IntegerAttribute(null=True)
    request_payload = NativeMapAttribute(null=True)
    last_attempt = IntegerAttribute(null=True)
    num_attempts = IntegerAttribute(null=True)
    regions_complete = NativeListAttribute(null=True)
    region_count = IntegerAttribute(null=True)
    attempt_token = UnicodeAttribute(null=True)


def _token() -> str:
    return secrets.token_urlsafe(9)


class RequestedJobsTable(DDBHelper):
    """RequestedJobsTable is the scheduler's view of the image requests that wait or run, per model endpoint.

    Every failure raises :class:`~model_runner.database.exceptions.RequestedJobsException`, which carries DynamoDB's
    error code as ``err.code`` (and, like botocore's ``ClientError``, in ``err.response["Error"]["Code"]``).

    :param table_name: Optional[str] = the table; OUTSTANDING_IMAGE_REQUEST_TABLE when None
    :param kwargs: Any = connection options of :class:`~model_runner.database.ddb_helper.DDBHelper`
        (``expire_days`` is checked but unused: records are deleted when the job is done)
    """

    item_class: ClassVar[type[DDBItem]] = RequestedJobsItem
    table_env_var: ClassVar[str] = "OUTSTANDING_IMAGE_REQUEST_TABLE"
    writes_expiry: ClassVar[bool] = False

    def __init__(self, table_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(table_name, **kwargs)

    # -- helpers -----------------------------------------------------------------------------------------------------

    @staticmethod
    def _key(request: ImageRequest) -> dict[str, str]:
        return {"endpoint_id": request.model_name, "job_id": request.job_id}

    def _item(self, endpoint_id: str, job_id: str) -> RequestedJobsItem:
        return cast(RequestedJobsItem, self.model(endpoint_id, job_id))

    @staticmethod
    def to_record(item: RequestedJobsItem) -> ImageRequestStatusRecord:
        """Return the record of a stored item.

        :param item: RequestedJobsItem = the item
        :return: ImageRequestStatusRecord = the record
        """
        return ImageRequestStatusRecord(
            endpoint_id=item.endpoint_id,
            job_id=item.job_id,
            request_time=int(item.request_time or 0),
            request_payload=request_from_payload(item.request_payload or {}),
            last_attempt=int(item.last_attempt or 0),
            num_attempts=int(item.num_attempts or 0),
            regions_complete=[str(v) for v in (item.regions_complete or [])],
            region_count=None if item.region_count is None else int(item.region_count),
        )

    def _read(self, endpoint_id: str, job_id: str, action: str) -> RequestedJobsItem | None:
        return cast("RequestedJobsItem | None", self._read_item(RequestedJobsException, action, endpoint_id, job_id))

    def _update(
        self, item: RequestedJobsItem, actions: list[Action], condition: Condition, action: str
    ) -> tuple[DatabaseError | None, bool]:
        """Run one conditional UpdateItem (retried), and tell whether an earlier attempt may have been applied.

        :param item: RequestedJobsItem = the bound item (holds the stored item afterwards)
        :param actions: List[Action] = the update actions
        :param condition: Condition = the condition
        :param action: str = what the update does, for messages
        :return: Tuple[Optional[DatabaseError], bool] = the error when the condition did not hold (else None), and
            whether an attempt whose outcome is unknown (a timeout, a dropped connection, a 5xx) came before
        :raises RequestedJobsException: when the request fails for another reason
        """
        maybe_applied = False

        def on_retry(err: BaseException, _retry: int) -> None:
            nonlocal maybe_applied
            if error_code(err) not in THROTTLING_CODES:  # a throttled request is never applied
                maybe_applied = True

        key = self.get_keys(item)
        try:
            call_with_retry(lambda: item.update(actions=actions, condition=condition), self.retry_policy, on_retry)
        except Exception as err:
            failure = self.error(RequestedJobsException, action, key, err)
            if failure.code != CONDITION_FAILED:
                raise failure from err
            failure.__cause__ = err
            return failure, maybe_applied
        return None, maybe_applied

    # -- the scheduler's API -----------------------------------------------------------------------------------------

    def add_new_request(self, image_request: ImageRequest, region_count: int | None = None) -> ImageRequestStatusRecord:
        """Record a new image request: one conditional PutItem that never overwrites an existing record.

        The record holds the request as ``request_payload``, now as ``request_time``, no attempt and no completed
        region (``region_count`` only when given). When a record of the same endpoint and job exists (a redelivered
        request, or our own retry after a lost response), nothing is written and the stored record is returned,
        with its attempts and completed regions: compare ``request_time`` or ``num_attempts`` to tell.

        :param image_request: ImageRequest = the request; model_name is the endpoint
        :param region_count: Optional[int] = regions of the image, when known
        :return: ImageRequestStatusRecord = the record as stored
        :raises RequestedJobsException: when the request fails
        """
        record = ImageRequestStatusRecord.new_from_request(image_request, region_count)
        key = self._key(image_request)
        try:
            payload = request_payload(image_request)
            item = self._item(record.endpoint_id, record.job_id)
            item.request_time = record.request_time
            item.request_payload = payload
            item.last_attempt = 0
            item.num_attempts = 0
            item.regions_complete = []
            item.region_count = region_count
        except (TypeError, ValueError) as err:
            raise self.error(RequestedJobsException, "add new request (bad input)", key, err) from err
        try:
            self._run(
                lambda: item.save(condition=RequestedJobsItem.endpoint_id.does_not_exist()),
                RequestedJobsException,
                "add new request",
                key,
            )
            return record
        except DatabaseError as err:
            if err.code != CONDITION_FAILED:
                raise
        stored = self._read(record.endpoint_id, record.job_id, "add new request (read existing record)")
        if stored is None:  # completed between the two requests
            raise self.error(RequestedJobsException, "add new request (record vanished)", key, None)
        return self.to_record(stored)

    def update_request_details(self, image_request: ImageRequest, region_count: int) -> None:
        """Set ``region_count`` on the existing record, in one conditional UpdateItem.

        :param image_request: ImageRequest = the request
        :param region_count: int = regions of the image
        :return: None
        :raises RequestedJobsException: with code ConditionalCheckFailedException when there is no such record, or
            when the request fails
        """
        key = self._key(image_request)
        item = self._item(key["endpoint_id"], key["job_id"])
        try:
            action = RequestedJobsItem.region_count.set(region_count)
        except (TypeError, ValueError) as err:
            raise self.error(RequestedJobsException, "update request details (bad input)", key, err) from err
        failed, _ = self._update(
            item, [action], RequestedJobsItem.endpoint_id.exists(), "update request details (no such record)"
        )
        if failed is not None:
            raise failed

    def get_outstanding_requests(self, endpoint_id: str | None = None) -> list[ImageRequestStatusRecord]:
        """Return the outstanding requests: every page of a consistent Scan, or of a Query of one endpoint.

        :param endpoint_id: Optional[str] = only this endpoint's requests (a Query on the partition key); all when
            None (a Scan of the whole table)
        :return: List[ImageRequestStatusRecord] = the records, region_count None where absent
        :raises RequestedJobsException: when the request fails
        """
        where: dict[str, Any] = {} if endpoint_id is None else {"endpoint_id": endpoint_id}

        def read() -> list[ImageRequestStatusRecord]:
            items: Any
            if endpoint_id is None:
                items = self.model.scan(consistent_read=True)
            else:
                items = self.model.query(endpoint_id, consistent_read=True)
            return [self.to_record(cast(RequestedJobsItem, item)) for item in items]

        return self._run(read, RequestedJobsException, "get outstanding requests", where)

    def start_next_attempt(self, record: ImageRequestStatusRecord) -> bool:
        """Start the next attempt of a request, under an optimistic lock on ``num_attempts``.

        One conditional UpdateItem sets ``last_attempt`` (now, epoch seconds) and adds 1 to ``num_attempts`` only
        if the stored ``num_attempts`` still equals ``record.num_attempts``: of N workers holding the same record,
        exactly one wins. The record passed in is not changed. When a response is lost and the retried request finds
        the count already moved, the stored attempt token tells whether this call moved it (True) or another
        worker did (False).

        :param record: ImageRequestStatusRecord = the record as the caller read it
        :return: bool = True when this call started the attempt; False when another worker already had (the record
            is stale) or there is no such record
        :raises RequestedJobsException: when the request fails
        """
        token = _token()
        item = self._item(record.endpoint_id, record.job_id)
        actions: list[Action] = [
            RequestedJobsItem.last_attempt.set(int(time.time())),
            RequestedJobsItem.num_attempts.add(1),
            RequestedJobsItem.attempt_token.set(token),
        ]
        condition = RequestedJobsItem.num_attempts == record.num_attempts
        failed, maybe_applied = self._update(item, actions, condition, "start next attempt")
        if failed is None:
            return True
        if not maybe_applied:
            return False
        stored = self._read(record.endpoint_id, record.job_id, "start next attempt (read record)")
        return stored is not None and stored.num_attempts == record.num_attempts + 1 and stored.attempt_token == token

    def complete_request(self, image_request: ImageRequest) -> None:
        """Delete the record of a request whose job is done; deleting a missing record is not an error.

        :param image_request: ImageRequest = the request
        :return: None
        :raises RequestedJobsException: when the request fails
        """
        key = self._key(image_request)
        item = self._item(key["endpoint_id"], key["job_id"])
        self._run(item.delete, RequestedJobsException, "complete request", key)

    def complete_region(self, image_request: ImageRequest, region_id: str) -> bool:
        """Record a region of a request as completed, exactly once.

        One conditional UpdateItem appends :func:`region_key` of the region to ``regions_complete`` (created when
        absent) if the record exists and the region is not there yet: a region is in the list once, however often
        it is completed. A retry of our own (after a timeout, a dropped connection or a 5xx, when the first attempt
        may have been applied) that finds the region already there reads the record and returns True: the attempt
        whose answer was lost recorded it. That is wrong only when a duplicate completion of the same region, from
        another worker, landed in that same window; then both calls return True, while the list still holds the
        region once.

        :param image_request: ImageRequest = the request
        :param region_id: str = the region completed
        :return: bool = True when this call recorded the region; False when it was recorded already or there is no
            record
        :raises RequestedJobsException: when the region id is not a non-empty string, the record would exceed
            DynamoDB's item size, or the request fails
        """
        key = self._key(image_request)
        try:
            entry = region_key(region_id)
        except TypeError as err:
            raise self.error(RequestedJobsException, "complete region (bad input)", key, err) from err
        regions = RequestedJobsItem.regions_complete
        actions: list[Action] = [
            regions.set((regions | []).append([entry])),
        ]
        condition = RequestedJobsItem.endpoint_id.exists() & ~regions.contains(entry)
        item = self._item(key["endpoint_id"], key["job_id"])
        failed, maybe_applied = self._update(item, actions, condition, "complete region")
        if failed is None:
            return True
        if not maybe_applied:
            return False
        stored = self._read(key["endpoint_id"], key["job_id"], "complete region (read record)")
        return stored is not None and entry in (stored.regions_complete or [])
