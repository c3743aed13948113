"""The region table: one item per region of an image job (RegionRequestItem) and its repository."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast

from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from model_runner.common.typing import ImageRegion, RequestStatus, TileState

from .attributes import EpochSecondsTTLAttribute, IntegerAttribute, NativeListAttribute, UnicodeAttribute
from .ddb_helper import DDBHelper, DDBItem, now_millis
from .exceptions import (
    CompleteRegionException,
    DatabaseError,
    GetRegionRequestItemException,
    InvalidRegionRequestException,
    StartRegionException,
    UpdateRegionException,
)

if TYPE_CHECKING:
    from model_runner.api import RegionRequest


class RegionRequestItem(DDBItem):
    """RegionRequestItem represents a single item in the region table: the state of one region of a job.

    The data schema is defined as follows:
    image_id: str = image_id of the job (hash key)
    region_id: str = identifier of the region within the job (range key)
    job_id: Optional[str] = job identifier for tracking
    start_time: Optional[int] = time in epoch milliseconds when the region started
    last_updated_time: Optional[int] = time in epoch milliseconds of the last update
    end_time: Optional[int] = time in epoch milliseconds when the region ended
    expire_time: Optional[int] = time in epoch seconds when the item will expire from the table
    image_read_role: Optional[str] = IAM role to read the image for processing
    processing_duration: Optional[int] = time in milliseconds to complete region processing
    message: Optional[str] = additional information about the region job
    region_status: Optional[str] = region status, a RequestStatus value
    total_tiles: Optional[int] = total number of tiles to be processed for the region
    failed_tiles: Optional[List] = tiles that failed processing, each [[row, col], [width, height]]
    failed_tile_count: Optional[int] = count of tiles that failed to process
    succeeded_tiles: Optional[List] = tiles that succeeded processing, each [[row, col], [width, height]]
    succeeded_tile_count: Optional[int] = count of successfully processed tiles
    region_bounds: Optional[List[List[int]]] = pixel bounds of the region, [[row, col], [width, height]]
    region_retry_count: Optional[int] = number of times the region processing has been restarted
    tile_compression: Optional[str] = compression type of tiles for the region (e.g., 'LZW', 'JPEG')
    tile_format: Optional[str] = file format of the tiles (e.g., 'tif', 'ntf')
    tile_overlap: Optional[List[int]] = overlap dimensions for the tiles in the region
    tile_size: Optional[List[int]] = size dimensions of the tiles in the region
    """

    class Meta:
        billing_mode = "PAY_PER_REQUEST"

    classic_fields: ClassVar[tuple[str, ...]] = (
        "region_id",
        "image_id",
        "job_id",
        "start_time",
        "last_updated_time",
        "end_time",
        "expire_time",
        "image_read_role",
        "processing_duration",
        "message",
        "region_status",
        "total_tiles",
        "failed_tiles",
        "failed_tile_count",
        "succeeded_tiles",
        "succeeded_tile_count",
        "region_bounds",
        "region_retry_count",
        "tile_compression",
        "tile_format",
        "tile_overlap",
        "tile_size",
    )

    image_id = UnicodeAttribute(hash_key=True)
    region_id = UnicodeAttribute(range_key=True)
    job_id = UnicodeAttribute(null=True)
    start_time = IntegerAttribute(null=True)
    last_updated_time = IntegerAttribute(null=True)
    end_time = IntegerAttribute(null=True)
    expire_time = EpochSecondsTTLAttribute(null=True)
    image_read_role = UnicodeAttribute(null=True)
    processing_duration = IntegerAttribute(null=True)
    message = UnicodeAttribute(null=True)
    region_status = UnicodeAttribute(null=True)
    total_tiles = IntegerAttribute(null=True)
    failed_tiles = NativeListAttribute(null=True)
    failed_tile_count = IntegerAttribute(null=True)
    succeeded_tiles = NativeListAttribute(null=True)
    succeeded_tile_count = IntegerAttribute(null=True)
    region_bounds = NativeListAttribute(null=True)
    region_retry_count = IntegerAttribute(null=True)
    tile_compression = UnicodeAttribute(null=True)
    tile_format = UnicodeAttribute(null=True)
    tile_overlap = NativeListAttribute(null=True)
    tile_size = NativeListAttribute(null=True)

    @classmethod
    def from_region_request(cls, region_request: RegionRequest) -> RegionRequestItem:
        """Helper method to create a RegionRequestItem from a RegionRequest object.

        :param region_request: A RegionRequest object.
        :return: A RegionRequestItem instance with the relevant fields populated.
        """
        return cls(
            region_id=region_request.region_id,
            image_id=region_request.image_id,
            job_id=region_request.job_id,
            image_read_role=region_request.image_read_role,
            region_bounds=[list(part) for part in region_request.region_bounds],
            tile_size=list(region_request.tile_size),
            tile_overlap=list(region_request.tile_overlap),
            tile_format=region_request.tile_format,
            tile_compression=region_request.tile_compression,
        )


#: Attributes that change only atomically (tile lists by append, counters by ADD or increment): no update writes the
#: value a caller holds, so an item read earlier and written back loses no tile and no retry.
ATOMIC_ATTRIBUTES = (
    "succeeded_tiles",
    "failed_tiles",
    "succeeded_tile_count",
    "failed_tile_count",
    "region_retry_count",
)

#: Attributes :meth:`RegionRequestTable.start_region_request` sets itself, whatever the caller's item holds.
START_ATTRIBUTES = (
    *ATOMIC_ATTRIBUTES,
    "region_status",
    "start_time",
    "last_updated_time",
    "expire_time",
    "end_time",
    "processing_duration",
)

#: Attempts of :meth:`RegionRequestTable.add_tile` when a condition fails but the tile is not recorded (the region
#: was deleted and created again in between).
ADD_TILE_ATTEMPTS = 3

#: Tiles :meth:`RegionRequestTable.add_tiles` records in one UpdateItem. Each tile adds ``AND NOT contains(...)``
#: (three operators) to the condition, and DynamoDB allows 300 operators and 4 KB per expression: 99 tiles take 298
#: operators and about 3.1 KB. Longer lists are recorded in consecutive requests of this many tiles.
MAX_TILES_PER_REQUEST = 99

#: Conditional updates :meth:`RegionRequestTable.start_region_request` tries while other workers start and end the
#: region in between.
START_ATTEMPTS = 3


def normalize_tile(tile: Any) -> list[list[int]]:
    """Check a tile and return it as stored: ``[[row, col], [width, height]]``.

    :param tile: Any = the tile, ``((row, col), (width, height))`` as tuples or lists of non-negative ints
    :return: List[List[int]] = the tile as lists of ints
    :raises ValueError: when the tile is not two pairs of non-negative ints (bools, floats and strings refused)
    """
    if not isinstance(tile, (tuple, list)) or len(tile) != 2:
        raise ValueError(f"a tile is ((row, col), (width, height)), got {tile!r}")
    result: list[list[int]] = []
    for pair in tile:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"a tile is ((row, col), (width, height)), got {tile!r}")
        values: list[int] = []
        for value in pair:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 0:
                raise ValueError(f"a tile holds non-negative ints, got {value!r} in {tile!r}")
            values.append(int(value))
        result.append(values)
    return result


def tile_state(state: Any) -> TileState:
    """Return the TileState of a state given as a TileState or its value.

    :param state: Any = TileState.SUCCEEDED / TileState.FAILED, or "succeeded" / "failed"
    :return: TileState = the state
    :raises ValueError: for anything else
    """
    if isinstance(state, TileState):
        return state
    if isinstance(state, str):
        try:
            return TileState(state)
        except ValueError:
            pass
    raise ValueError(f"a tile state is one of {[s.value for s in TileState]}, got {state!r}")


def request_status(status: Any) -> str:
    """Return the stored value of a region status given as a RequestStatus or its value.

    :param status: Any = a RequestStatus, or its value such as "SUCCESS"
    :return: str = the value stored in region_status
    :raises ValueError: for anything else
    """
    if isinstance(status, RequestStatus):
        return status.value
    if isinstance(status, str):
        try:
            return RequestStatus(status).value
        except ValueError:
            pass
    raise ValueError(f"a region status is one of {[s.value for s in RequestStatus]}, got {status!r}")


class RegionRequestTable(DDBHelper):
    """RegionRequestTable is a class meant to help OSML with accessing and interacting with the region processing
    jobs we track as part of the region table.

    Every write is one UpdateItem returning the item as stored after it. Tiles are recorded only by
    :meth:`add_tile` and :meth:`add_tiles` (atomic append, each tile once per state, its count by ADD), the retry
    count only by :meth:`start_region_request`; no other method writes them, and no method but
    :meth:`start_region_request` creates a region.

    :param table_name: Optional[str] = the name of the table to interact with; REGION_REQUEST_TABLE when None
    :param kwargs: Any = connection options of :class:`~model_runner.database.ddb_helper.DDBHelper`

    :return: None
    """

    item_class: ClassVar[type[DDBItem]] = RegionRequestItem
    table_env_var: ClassVar[str] = "REGION_REQUEST_TABLE"

    def __init__(self, table_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(table_name, **kwargs)

    # -- helpers -----------------------------------------------------------------------------------------------------

    def _new_region(self, image_id: str, region_id: str) -> RegionRequestItem:
        """Return a bound RegionRequestItem holding only the key (the target of an UpdateItem).

        :param image_id: str = the region's image id
        :param region_id: str = the region id
        :return: RegionRequestItem = the bound item
        """
        return cast(RegionRequestItem, self.model(image_id=image_id, region_id=region_id))

    def _read(
        self, image_id: str, region_id: str, exc_class: type[DatabaseError], action: str
    ) -> RegionRequestItem | None:
        """Read a region with a strongly consistent get.

        :param image_id: str = the region's image id
        :param region_id: str = the region id
        :param exc_class: Type[DatabaseError] = the exception raised when the read fails
        :param action: str = what the caller does, for the message
        :return: Optional[RegionRequestItem] = the stored region, or None when there is none
        :raises DatabaseError: ``exc_class`` when the read fails
        """
        return cast("RegionRequestItem | None", self._read_item(exc_class, action, image_id, region_id))

    # -- the region API ----------------------------------------------------------------------------------------------

    def start_region_request(self, region_request_item: RegionRequestItem) -> RegionRequestItem:
        """Start a region processing request for given region pixel bounds, this should be the first record
        for this region in the table.

        One UpdateItem, without condition or read, creates the region or starts it again:

        - region_status STARTED, last_updated_time (epoch ms, now) and expire_time are set; end_time and
          processing_duration of an earlier completion are removed;
        - start_time (epoch ms, now) is set only when the region has none: a restart keeps the first start time;
        - succeeded_tiles, failed_tiles (empty) and their counts (0) are set only when absent: a restart keeps the
          tiles already recorded, and a worker retrying the region skips the succeeded ones;
        - region_retry_count is 0 on the first start and grows by one on every later start (a redelivered start
          message, a region requeued after a crash, or our own retry of a request whose response was lost);
        - the other attributes set on the item (job_id, region_bounds, tile_size, ...) are written as given.

        The update is conditional on the region having no end_time. A start that reaches DynamoDB late, after the
        region was started again and completed (a request held in the network past the client's timeout, then
        applied), therefore changes nothing: it can never turn a completed region back to STARTED. A start that finds
        the region ended reads it (consistent get) and restarts it on condition that its end_time and
        region_retry_count are still the ones read, so that request too changes nothing if it arrives late. No host's
        clock is compared with another's: the guard holds whatever the skew between workers (the clock only gives the
        times written).

        The caller's item is not modified: use the returned one.

        :param region_request_item: RegionRequestItem = the region to start; image_id and region_id are required

        :return: RegionRequestItem = the region as stored after the update
        :raises StartRegionException: when the request fails
        """
        item = RegionRequestItem
        now = now_millis()
        actions: list[Action] = [
            item.region_status.set(RequestStatus.STARTED.value),
            item.start_time.set(item.start_time | now),
            item.last_updated_time.set(now),
            item.expire_time.set(cast(Any, self.expire_time())),  # epoch seconds: EpochSecondsTTLAttribute
            item.end_time.remove(),
            item.processing_duration.remove(),
            item.succeeded_tiles.set(item.succeeded_tiles | []),
            item.failed_tiles.set(item.failed_tiles | []),
            item.succeeded_tile_count.set(item.succeeded_tile_count | 0),
            item.failed_tile_count.set(item.failed_tile_count | 0),
            item.region_retry_count.set((item.region_retry_count | -1) + 1),
            *self.actions_for(region_request_item, exclude=START_ATTRIBUTES),
        ]
        image_id, region_id = region_request_item.image_id, region_request_item.region_id
        # The late-start guard compares stored values with stored values, never two hosts' clocks: a blind start
        # applies only to a region that has not ended; an ended region is restarted only while it is the one read.
        condition: Condition = item.end_time.does_not_exist()
        stored: RegionRequestItem | None = None
        for _ in range(START_ATTEMPTS):
            region = self._new_region(image_id, region_id)
            stale = self._conditional_update(region, actions, condition, StartRegionException, "start region request")
            if stale is None:
                return region
            stored = self._read(image_id, region_id, StartRegionException, "start region request (read region)")
            if stored is None:  # deleted between the two requests
                key = {"image_id": image_id, "region_id": region_id}
                raise self.error(StartRegionException, "start region request (region vanished)", key, stale) from stale
            if stored.end_time is None:  # started again meanwhile
                condition = item.end_time.does_not_exist()
                continue
            retries = stored.region_retry_count
            condition = (item.end_time == stored.end_time) & (
                item.region_retry_count.does_not_exist() if retries is None else item.region_retry_count == retries
            )
        return cast(RegionRequestItem, stored)  # other workers kept starting and ending it: theirs are the starts

    def complete_region_request(
        self, region_request_item: RegionRequestItem, region_status: RequestStatus | str
    ) -> RegionRequestItem:
        """Update the region job to reflect that a region has succeeded or failed.

        One UpdateItem, on an existing region only, SETs region_status, end_time and last_updated_time (epoch ms,
        now) and processing_duration: the **milliseconds** since the region's start_time (as the classic
        implementation stores it; the job table's processing_duration is in seconds). The start time is the item's
        when it has one, else the stored one, which then takes a consistent read first; a region without any start
        time gets no processing_duration. Nothing else is written: tiles and counts recorded meanwhile are kept.

        :param region_request_item: RegionRequestItem = the region to complete (image_id and region_id)
        :param region_status: Union[RequestStatus, str] = Status of region at completion (FAILED, PARTIAL,
            SUCCESS, ...), or its value

        :return: RegionRequestItem = the region as stored after the update
        :raises CompleteRegionException: when the status is not a RequestStatus, the region does not exist or the
            request fails
        """
        image_id, region_id = region_request_item.image_id, region_request_item.region_id
        key = {"image_id": image_id, "region_id": region_id}
        try:
            status = request_status(region_status)
        except ValueError as err:
            raise self.error(CompleteRegionException, "complete region request (bad status)", key, err) from err
        start_time = region_request_item.start_time
        if start_time is None:
            stored = self._read(image_id, region_id, CompleteRegionException, "complete region request (read start)")
            if stored is None:
                raise self.error(CompleteRegionException, "complete region request (region does not exist)", key, None)
            start_time = stored.start_time
        now = now_millis()
        actions: list[Action] = [
            RegionRequestItem.region_status.set(status),
            RegionRequestItem.end_time.set(now),
            RegionRequestItem.last_updated_time.set(now),
        ]
        if start_time is not None:
            actions.append(RegionRequestItem.processing_duration.set(now - int(start_time)))
        region = self._new_region(image_id, region_id)
        failed = self._conditional_update(
            region, actions, RegionRequestItem.image_id.exists(), CompleteRegionException, "complete region request"
        )
        if failed is not None:
            raise self.error(
                CompleteRegionException, "complete region request (region does not exist)", key, failed
            ) from failed
        return region

    def update_region_request(self, region_request_item: RegionRequestItem) -> RegionRequestItem:
        """Update the region info in the ddb

        One UpdateItem, on an existing region only, SETs the attributes set (not None) on the item and
        last_updated_time (epoch ms, now). succeeded_tiles, failed_tiles, their counts and region_retry_count are
        never written (they change only atomically, through :meth:`add_tile` and :meth:`start_region_request`): an
        item read before tiles were added and written back keeps those tiles, and counts set on the item are ignored.

        :param region_request_item: RegionRequestItem = the region, with the attributes to write set

        :return: RegionRequestItem = the region as stored after the update
        :raises UpdateRegionException: when the region does not exist or the request fails
        """
        image_id, region_id = region_request_item.image_id, region_request_item.region_id
        actions = self.actions_for(region_request_item, exclude=(*ATOMIC_ATTRIBUTES, "last_updated_time"))
        actions.append(RegionRequestItem.last_updated_time.set(now_millis()))
        region = self._new_region(image_id, region_id)
        failed = self._conditional_update(
            region, actions, RegionRequestItem.image_id.exists(), UpdateRegionException, "update region request"
        )
        if failed is not None:
            key = {"image_id": image_id, "region_id": region_id}
            raise self.error(UpdateRegionException, "update region request (region does not exist)", key, failed) from (
                failed
            )
        return region

    def get_region_request(self, region_id: str, image_id: str) -> RegionRequestItem | None:
        """Get a RegionRequestItem object from the table based on the region_id and image_id provided (strongly
        consistent read).

        :param region_id: str = the unique identifier for the region we want to start processing
        :param image_id: str = the unique identifier for the image (hash key)

        :return: Optional[RegionRequestItem] = region request item, None when there is none
        :raises GetRegionRequestItemException: when the request fails
        """
        return self._read(image_id, region_id, GetRegionRequestItemException, "get region request")

    def add_tile(
        self, image_id: str, region_id: str, tile: ImageRegion | Sequence[Sequence[int]], state: TileState | str
    ) -> RegionRequestItem:
        """Append tile to the with the associated state to associated RegionRequestItem in the table.

        The tile is checked first (two pairs of non-negative ints); nothing is written when it is malformed. One
        UpdateItem, on an existing region whose list for ``state`` does not hold the tile yet, appends
        ``[[row, col], [width, height]]`` to succeeded_tiles or failed_tiles (created when absent) and ADDs 1 to
        succeeded_tile_count or failed_tile_count. A tile already recorded in that state (a redelivered tile, or our
        own retry after a lost response) changes nothing: the stored region is returned, so each count always equals
        the length of its list.

        A tile is recorded once per state: a tile that failed and later succeeded (on a retry of the region) is in
        both lists, once each, as in the classic implementation; a worker that skips succeeded tiles never records a
        failure after a success.

        :param image_id: str = the id of the image request we want to update
        :param region_id: str = the id of the region request we want to update
        :param tile: ImageRegion = the tile, ((row, col), (width, height)), as tuples or lists
        :param state: Union[TileState, str] = state of the tile to add, i.e. succeeded or failed (or its value)
        :return: RegionRequestItem = the region as stored after the update
        :raises UpdateRegionException: when the tile or the state is malformed, the region does not exist or the
            request fails
        """
        key = {"image_id": image_id, "region_id": region_id}
        try:
            value = normalize_tile(tile)
            checked_state = tile_state(state)
        except ValueError as err:
            raise self.error(InvalidRegionRequestException, "add tile (bad input)", key, err) from err
        item = RegionRequestItem
        if checked_state is TileState.SUCCEEDED:
            list_name, tiles, count = "succeeded_tiles", item.succeeded_tiles, item.succeeded_tile_count
        else:
            list_name, tiles, count = "failed_tiles", item.failed_tiles, item.failed_tile_count
        actions: list[Action] = [
            tiles.set((tiles | []).append([value])),
            count.add(1),
            RegionRequestItem.last_updated_time.set(now_millis()),
        ]
        condition = RegionRequestItem.image_id.exists() & ~tiles.contains(value)
        failed: DatabaseError | None = None
        for _ in range(ADD_TILE_ATTEMPTS):
            region = self._new_region(image_id, region_id)
            failed = self._conditional_update(region, actions, condition, UpdateRegionException, "add tile")
            if failed is None:
                return region
            stored = self._read(image_id, region_id, UpdateRegionException, "add tile (read region)")
            if stored is None:
                raise self.error(UpdateRegionException, "add tile (region does not exist)", key, failed) from failed
            if value in (getattr(stored, list_name) or []):
                return stored
        raise self.error(UpdateRegionException, "add tile (condition kept failing)", key, failed) from failed

    def add_tiles(
        self,
        image_id: str,
        region_id: str,
        tiles: Sequence[ImageRegion | Sequence[Sequence[int]]],
        state: TileState | str,
    ) -> RegionRequestItem:
        """Append many tiles with one state to a region, in one UpdateItem in the common case.

        Every tile is checked first (two pairs of non-negative ints); an empty list, or one holding anything that is
        not a tile, raises and writes nothing. A tile given twice counts once. One UpdateItem, on an existing region
        whose list for ``state`` holds none of the tiles yet, appends them all to succeeded_tiles or failed_tiles
        (created when absent) and ADDs their number to succeeded_tile_count or failed_tile_count, so each count stays
        equal to the length of its list.

        When some tiles are recorded already (a redelivered batch, or our own retry after a lost response), the
        condition fails: the region is read and the tiles not yet recorded are appended by a second UpdateItem (none
        when all are there). A tile already recorded in that state is never recorded twice. Lists longer than
        :data:`MAX_TILES_PER_REQUEST` tiles are recorded in consecutive requests of that many tiles (DynamoDB caps
        a condition expression at 300 operators); each request is all-or-nothing.

        :param image_id: str = the id of the image request we want to update
        :param region_id: str = the id of the region request we want to update
        :param tiles: Sequence[ImageRegion] = the tiles, each ((row, col), (width, height)), as tuples or lists
        :param state: Union[TileState, str] = state of the tiles, i.e. succeeded or failed (or its value)
        :return: RegionRequestItem = the region as stored after the update
        :raises UpdateRegionException: when the list is empty, holds a non-tile, the state is malformed, the region
            does not exist or a request fails
        """
        key = {"image_id": image_id, "region_id": region_id}
        try:
            if isinstance(tiles, (str, bytes)) or not isinstance(tiles, Sequence):
                raise ValueError(f"tiles: expected a list of tiles, got {type(tiles).__name__}")
            if not tiles:
                raise ValueError("tiles: expected at least one tile, got an empty list")
            values: list[list[list[int]]] = []
            for tile in tiles:
                value = normalize_tile(tile)
                if value not in values:
                    values.append(value)
            checked_state = tile_state(state)
        except ValueError as err:
            raise self.error(InvalidRegionRequestException, "add tiles (bad input)", key, err) from err
        stored: RegionRequestItem | None = None
        for start in range(0, len(values), MAX_TILES_PER_REQUEST):
            stored = self._add_tile_values(
                image_id, region_id, values[start : start + MAX_TILES_PER_REQUEST], checked_state
            )
        assert stored is not None
        return stored

    def _add_tile_values(
        self, image_id: str, region_id: str, values: list[list[list[int]]], state: TileState
    ) -> RegionRequestItem:
        """Append checked, distinct tiles that are not recorded yet, with one UpdateItem per attempt.

        :param image_id: str = the region's image id
        :param region_id: str = the region id
        :param values: List[List[List[int]]] = the tiles, as stored, at most MAX_TILES_PER_REQUEST
        :param state: TileState = their state
        :return: RegionRequestItem = the region as stored after the update
        :raises UpdateRegionException: when the region does not exist or a request fails
        """
        key = {"image_id": image_id, "region_id": region_id}
        item = RegionRequestItem
        if state is TileState.SUCCEEDED:
            list_name, tile_list, count = "succeeded_tiles", item.succeeded_tiles, item.succeeded_tile_count
        else:
            list_name, tile_list, count = "failed_tiles", item.failed_tiles, item.failed_tile_count
        pending = values
        failed: DatabaseError | None = None
        for _ in range(ADD_TILE_ATTEMPTS):
            actions: list[Action] = [
                tile_list.set((tile_list | []).append(pending)),
                count.add(len(pending)),
                item.last_updated_time.set(now_millis()),
            ]
            condition: Condition = item.image_id.exists()
            for value in pending:
                condition = condition & ~tile_list.contains(value)
            region = self._new_region(image_id, region_id)
            failed = self._conditional_update(region, actions, condition, UpdateRegionException, "add tiles")
            if failed is None:
                return region
            stored = self._read(image_id, region_id, UpdateRegionException, "add tiles (read region)")
            if stored is None:
                raise self.error(UpdateRegionException, "add tiles (region does not exist)", key, failed) from failed
            recorded = getattr(stored, list_name) or []
            pending = [value for value in pending if value not in recorded]
            if not pending:
                return stored
        raise self.error(UpdateRegionException, "add tiles (condition kept failing)", key, failed) from failed
