"""The endpoint statistics table: regions in progress per model endpoint, for self-throttling."""

from __future__ import annotations

from typing import Any, ClassVar

from pynamodb.attributes import UnicodeAttribute

from .attributes import IntegerAttribute
from .ddb_helper import DDBHelper, DDBItem


class EndpointStatisticsItem(DDBItem):
    """One model endpoint's load.

    endpoint: str = the SageMaker endpoint name (hash key)
    max_regions: Optional[int] = regions the endpoint can process at once
    regions_in_progress: Optional[int] = regions being processed now; never below zero
    """

    class Meta:
        billing_mode = "PAY_PER_REQUEST"

    endpoint = UnicodeAttribute(hash_key=True)
    max_regions = IntegerAttribute(null=True)
    regions_in_progress = IntegerAttribute(null=True)


class EndpointStatisticsTable(DDBHelper):
    """EndpointStatisticsTable is a class meant to help OSML with accessing and interacting with the per endpoint
    processing statistics we track as part of the endpoint statistics table.

    :param table_name: Optional[str] = the name of the table to interact with; ENDPOINT_TABLE when None
    :param kwargs: Any = connection options of :class:`~model_runner.database.ddb_helper.DDBHelper`

    :return: None
    """

    item_class: ClassVar[type[DDBItem]] = EndpointStatisticsItem
    table_env_var: ClassVar[str] = "ENDPOINT_TABLE"

    def __init__(self, table_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(table_name, **kwargs)
