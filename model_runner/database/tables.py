"""Create and delete the tables from the models (``Model.create_table``), idempotently.

Five tables: the four of the classic workflow (job, region, endpoint statistics, feature) and the requested-jobs table
of a capacity-aware scheduler (see docs/scheduler.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from pynamodb.attributes import TTLAttribute

from .binding import TableSettings, bind_model, env_table_name
from .ddb_helper import DDBItem
from .endpoint_statistics_table import EndpointStatisticsItem
from .exceptions import TableSetupException, describe, error_code
from .feature_table import FeatureItem
from .job_table import JobItem
from .region_request_table import RegionRequestItem
from .requested_jobs_table import RequestedJobsItem
from .retry import call_with_retry

#: The tables: a short role name, the model, the environment variable of its name, and the default name.
TABLE_MODELS: dict[str, tuple[type[DDBItem], str, str]] = {
    "job": (JobItem, "JOB_TABLE", "ImageProcessingJobStatus"),
    "region": (RegionRequestItem, "REGION_REQUEST_TABLE", "RegionProcessingJobStatus"),
    "endpoint": (EndpointStatisticsItem, "ENDPOINT_TABLE", "EndpointStatisticsTable"),
    "feature": (FeatureItem, "FEATURE_TABLE", "ImageProcessingFeatures"),
    "requested": (RequestedJobsItem, "OUTSTANDING_IMAGE_REQUEST_TABLE", "OutstandingImageRequests"),
}


@dataclass(frozen=True)
class TableNames:
    """The names of the tables.

    :param job: str = job (image request) table name
    :param region: str = region table name
    :param endpoint: str = endpoint statistics table name
    :param feature: str = feature table name
    :param requested: str = requested-jobs table name (the scheduler's); OutstandingImageRequests when not given
    """

    job: str
    region: str
    endpoint: str
    feature: str
    requested: str = "OutstandingImageRequests"

    @classmethod
    def resolve(
        cls,
        prefix: str | None = None,
        job: str | None = None,
        region: str | None = None,
        endpoint: str | None = None,
        feature: str | None = None,
        requested: str | None = None,
    ) -> TableNames:
        """Resolve the names: explicit values first, then ``prefix`` + default name, then the environment
        (JOB_TABLE or IMAGE_REQUEST_TABLE, REGION_REQUEST_TABLE, ENDPOINT_TABLE, FEATURE_TABLE,
        OUTSTANDING_IMAGE_REQUEST_TABLE), then the default names.

        :param prefix: Optional[str] = a prefix put before the default names
        :param job: Optional[str] = job table name
        :param region: Optional[str] = region table name
        :param endpoint: Optional[str] = endpoint statistics table name
        :param feature: Optional[str] = feature table name
        :param requested: Optional[str] = requested-jobs table name
        :return: TableNames = the names
        :raises ConfigurationError: when JOB_TABLE and IMAGE_REQUEST_TABLE name different tables
        """
        given = {"job": job, "region": region, "endpoint": endpoint, "feature": feature, "requested": requested}
        names = {}
        for role, (_, env_var, default) in TABLE_MODELS.items():
            if given[role]:
                names[role] = given[role]
            elif prefix:
                names[role] = f"{prefix}{default}"
            else:
                names[role] = env_table_name(env_var) or default
        return cls(**names)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, str]:
        """Return role name to table name.

        :return: Dict[str, str] = the names
        """
        return {
            "job": self.job,
            "region": self.region,
            "endpoint": self.endpoint,
            "feature": self.feature,
            "requested": self.requested,
        }


@dataclass
class TableReport:
    """What create_tables or delete_tables did: table names created, already present, deleted, absent."""

    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    ttl_enabled: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)


def _bound_models(names: TableNames, host: str | None, region: str | None) -> list[type[DDBItem]]:
    models = []
    for role, table_name in names.as_dict().items():
        model, env_var, _ = TABLE_MODELS[role]
        models.append(bind_model(model, TableSettings.resolve(table_name, env_var, host=host, region=region)))
    return models


def _ttl_enabled(model: type[DDBItem]) -> bool:
    client = model._get_connection().connection.client
    description = client.describe_time_to_live(TableName=model.Meta.table_name)["TimeToLiveDescription"]
    return description.get("TimeToLiveStatus") in ("ENABLED", "ENABLING")


def create_tables(
    names: TableNames | None = None,
    host: str | None = None,
    region: str | None = None,
    billing_mode: str = "PAY_PER_REQUEST",
    read_capacity_units: int | None = None,
    write_capacity_units: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> TableReport:
    """Create the tables with ``Model.create_table(wait=True)`` and enable TTL on ``expire_time``.

    Idempotent: tables that exist are left as they are, and TTL is enabled only where it is not yet (real DynamoDB
    refuses to enable it twice).

    :param names: Optional[TableNames] = the table names; :meth:`TableNames.resolve` when None
    :param host: Optional[str] = endpoint URL; the environment's when None
    :param region: Optional[str] = region; the environment's when None
    :param billing_mode: str = PAY_PER_REQUEST (on demand, the default) or PROVISIONED
    :param read_capacity_units: Optional[int] = read capacity for PROVISIONED
    :param write_capacity_units: Optional[int] = write capacity for PROVISIONED
    :param progress: Optional[Callable[[str], None]] = called with a line of progress per table
    :return: TableReport = tables created and already present
    :raises TableSetupException: when a table cannot be created or described
    """
    report = TableReport()
    for model in _bound_models(names or TableNames.resolve(), host, region):
        table_name = model.Meta.table_name
        try:
            if call_with_retry(model.exists):
                report.existing.append(table_name)
            else:
                kwargs = {}
                if billing_mode == "PROVISIONED":
                    kwargs = {
                        "read_capacity_units": read_capacity_units or 5,
                        "write_capacity_units": write_capacity_units or 5,
                    }
                model.create_table(wait=True, billing_mode=billing_mode, ignore_update_ttl_errors=True, **kwargs)
                report.created.append(table_name)
            has_ttl = any(isinstance(attr, TTLAttribute) for attr in model.get_attributes().values())
            if has_ttl and not call_with_retry(partial(_ttl_enabled, model)):
                model.update_ttl(ignore_update_ttl_errors=False)
                report.ttl_enabled.append(table_name)
        except Exception as err:
            raise TableSetupException(
                f"creating table {table_name} failed: {describe(err)}", table_name=table_name, code=error_code(err)
            ) from err
        if progress is not None:
            progress(f"{table_name}: {'created' if table_name in report.created else 'exists'}")
    return report


def delete_tables(
    names: TableNames | None = None,
    host: str | None = None,
    region: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> TableReport:
    """Delete the tables; tables that do not exist are skipped.

    :param names: Optional[TableNames] = the table names; :meth:`TableNames.resolve` when None
    :param host: Optional[str] = endpoint URL; the environment's when None
    :param region: Optional[str] = region; the environment's when None
    :param progress: Optional[Callable[[str], None]] = called with a line of progress per table
    :return: TableReport = tables deleted and absent
    :raises TableSetupException: when a table cannot be deleted
    """
    report = TableReport()
    for model in _bound_models(names or TableNames.resolve(), host, region):
        table_name = model.Meta.table_name
        try:
            if call_with_retry(model.exists):
                model.delete_table()
                report.deleted.append(table_name)
            else:
                report.absent.append(table_name)
        except Exception as err:
            raise TableSetupException(
                f"deleting table {table_name} failed: {describe(err)}", table_name=table_name, code=error_code(err)
            ) from err
        if progress is not None:
            progress(f"{table_name}: {'deleted' if table_name in report.deleted else 'absent'}")
    return report
