"""The region table: one item per region of an image job (RegionRequestItem) and its repository."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from .attributes import EpochSecondsTTLAttribute, IntegerAttribute, NativeListAttribute, UnicodeAttribute
from .ddb_helper import DDBHelper, DDBItem

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
    def from_region_request(cls, region_request: "RegionRequest") -> "RegionRequestItem":
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


class RegionRequestTable(DDBHelper):
    """RegionRequestTable is a class meant to help OSML with accessing and interacting with the region processing
    jobs we track as part of the region table.

    :param table_name: Optional[str] = the name of the table to interact with; REGION_REQUEST_TABLE when None
    :param kwargs: Any = connection options of :class:`~model_runner.database.ddb_helper.DDBHelper`

    :return: None
    """

    item_class: ClassVar[type[DDBItem]] = RegionRequestItem
    table_env_var: ClassVar[str] = "REGION_REQUEST_TABLE"

    def __init__(self, table_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(table_name, **kwargs)
