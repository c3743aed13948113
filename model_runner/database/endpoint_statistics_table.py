"""The endpoint statistics table: regions in progress per model endpoint, for self-throttling."""

from __future__ import annotations

from typing import Any, ClassVar, cast

from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from .attributes import IntegerAttribute, UnicodeAttribute
from .ddb_helper import DDBHelper, DDBItem
from .exceptions import CONDITION_FAILED, DatabaseError, EndpointStatisticsException


#: DynamoDB's error code of a condition that did not hold.
class EndpointStatisticsItem(DDBItem):
    """One model endpoint's load.

    endpoint: str = the SageMaker endpoint name (hash key)
    max_regions: Optional[int] = regions the endpoint can process at once
    regions_in_progress: Optional[int] = regions being processed now; never below zero
    """

    class Meta:
        billing_mode = "PAY_PER_REQUEST"

    classic_fields: ClassVar[tuple[str, ...]] = ("endpoint", "regions_in_progress", "max_regions")

    endpoint = UnicodeAttribute(hash_key=True)
    max_regions = IntegerAttribute(null=True)
    regions_in_progress = IntegerAttribute(null=True)


class EndpointStatisticsTable(DDBHelper):
    """EndpointStatisticsTable is a class meant to help OSML with accessing and interacting with the per endpoint
    processing statistics we track as part of the endpoint statistics table.

    Each change is one UpdateItem with an atomic ADD, so workers on many hosts can share an endpoint's count. A
    request whose response is lost is retried and may then count twice; ``regions_in_progress`` never goes below zero.

    :param table_name: Optional[str] = the name of the table to interact with; ENDPOINT_TABLE when None
    :param kwargs: Any = connection options of :class:`~model_runner.database.ddb_helper.DDBHelper`

    :return: None
    """

    item_class: ClassVar[type[DDBItem]] = EndpointStatisticsItem
    table_env_var: ClassVar[str] = "ENDPOINT_TABLE"
    writes_expiry: ClassVar[bool] = False  # endpoint statistics never expire

    def __init__(self, table_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(table_name, **kwargs)

    def _change(self, endpoint: str, actions: list[Action], condition: Condition | None, action: str) -> bool:
        """Run one UpdateItem on an endpoint's item.

        :param endpoint: str = Sagemaker endpoint name
        :param actions: List[Action] = the update actions
        :param condition: Optional[Condition] = the condition of the update
        :param action: str = what the update does, for the message
        :return: bool = True when applied, False when the condition did not hold
        :raises EndpointStatisticsException: when the request fails
        """
        item = self.model(endpoint)
        try:
            self._run(
                lambda: item.update(actions=actions, condition=condition),
                EndpointStatisticsException,
                action,
                {"endpoint": endpoint},
            )
        except DatabaseError as err:
            if condition is None or err.code != CONDITION_FAILED:
                raise
            return False
        return True

    def upsert_endpoint(self, endpoint: str, max_regions: int) -> None:
        """Upserts an endpoint statistics entry. If the endpoint is already being
        tracked then we update the max_region count for the existing entry. If an
        endpoint is scaled up or down or the associated instance type changes the
        maximum number of concurrent regions may change.

        One UpdateItem sets max_regions and starts regions_in_progress at 0 when it is not set; a count in progress is
        kept.

        :param endpoint: str = Sagemaker endpoint name
        :param max_regions: int = current max concurrent regions the endpoint can process

        :return: None
        :raises EndpointStatisticsException: when the request fails
        """
        in_progress = EndpointStatisticsItem.regions_in_progress
        actions: list[Action] = [EndpointStatisticsItem.max_regions.set(max_regions), in_progress.set(in_progress | 0)]
        self._change(endpoint, actions, None, "upsert endpoint")

    def increment_region_count(self, endpoint: str) -> None:
        """Increases the in progress regions for the specified endpoint by 1.

        An atomic ADD: an endpoint not tracked yet gets an item with regions_in_progress 1 (and no max_regions until
        :meth:`upsert_endpoint`).

        :param endpoint: str = Sagemaker endpoint name

        :return: None
        :raises EndpointStatisticsException: when the request fails
        """
        self._change(endpoint, [EndpointStatisticsItem.regions_in_progress.add(1)], None, "increment region count")

    def decrement_region_count(self, endpoint: str) -> None:
        """Decreases the in progress regions for the specified endpoint by 1.

        An atomic ADD of -1 on condition that the count is above zero: at zero, or for an endpoint not tracked, nothing
        changes and no error is raised (no item is created).

        :param endpoint: str = Sagemaker endpoint name

        :return: None
        :raises EndpointStatisticsException: when the request fails
        """
        in_progress = EndpointStatisticsItem.regions_in_progress
        self._change(endpoint, [in_progress.add(-1)], in_progress > 0, "decrement region count")

    def current_in_progress_regions(self, endpoint: str) -> int:
        """Retrieve the current number of in progress regions for the specified endpoint (strongly consistent read).

        :param endpoint: str = Sagemaker endpoint name

        :return: int = current number of in progress regions; 0 for an endpoint never seen
        :raises EndpointStatisticsException: when the request fails
        """
        item = cast(
            "EndpointStatisticsItem | None",
            self._read_item(EndpointStatisticsException, "read region count", endpoint),
        )
        if item is None or item.regions_in_progress is None:
            return 0
        return int(item.regions_in_progress)
