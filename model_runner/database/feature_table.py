"""The feature table: the model's detections, grouped by tile key, sharded and compressed (FeatureItem, FeatureTable)."""

from __future__ import annotations

from typing import Any, ClassVar, Optional

from pynamodb.attributes import BinaryAttribute, ListAttribute, UnicodeAttribute

from model_runner.common.typing import ImageDimensions

from .attributes import EpochSecondsTTLAttribute, IntegerAttribute
from .ddb_helper import DDBHelper, DDBItem


class FeatureItem(DDBItem):
    """One group of features of an image, stored under one shard.

    hash_key: str = image_id + "-" + shard number in 1..hash_salt (hash key)
    range_key: str = the tile key of the group, and what makes the item unique within the shard (range key)
    expire_time: Optional[int] = time in epoch seconds when the item expires
    features: Optional[List[str]] = the classic layout: one GeoJSON string per feature (read, never written)
    packed: Optional[bytes] = the features, encoded and compressed; the first byte names the codec
    feature_count: Optional[int] = number of features in ``packed``
    """

    class Meta:
        billing_mode = "PAY_PER_REQUEST"

    hash_key = UnicodeAttribute(hash_key=True)
    range_key = UnicodeAttribute(range_key=True)
    expire_time = EpochSecondsTTLAttribute(null=True)
    features = ListAttribute(of=UnicodeAttribute, null=True)
    packed = BinaryAttribute(null=True, legacy_encoding=False, attr_name="p")
    feature_count = IntegerAttribute(null=True, attr_name="n")


class FeatureTable(DDBHelper):
    """Stores the features (detections) of image jobs and aggregates them back.

    :param table_name: Optional[str] = the name of the table to interact with; FEATURE_TABLE when None
    :param tile_size: ImageDimensions = the tile size of the job, (width, height)
    :param overlap: ImageDimensions = the tile overlap of the job, (width, height)
    :param kwargs: Any = connection options of :class:`~model_runner.database.ddb_helper.DDBHelper`
    """

    item_class: ClassVar[type[DDBItem]] = FeatureItem
    table_env_var: ClassVar[str] = "FEATURE_TABLE"
    hash_salt: int = 50

    def __init__(
        self,
        table_name: Optional[str] = None,
        tile_size: ImageDimensions = (1024, 1024),
        overlap: ImageDimensions = (50, 50),
        **kwargs: Any,
    ) -> None:
        super().__init__(table_name, **kwargs)
        self.tile_size = tile_size
        self.overlap = overlap
