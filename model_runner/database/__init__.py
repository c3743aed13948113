"""model_runner.database: the tables of the model runner as PynamoDB models with thin repositories on top.

Nothing is read from the environment and no connection is opened at import: a repository reads its table name,
endpoint and region when it is created.
"""

from .ddb_helper import DDBHelper, DDBItem, DDBKey
from .endpoint_statistics_table import EndpointStatisticsItem, EndpointStatisticsTable
from .exceptions import (
    AddFeaturesException,
    CompleteRegionException,
    ConfigurationError,
    DatabaseError,
    DDBBatchWriteException,
    DDBException,
    DDBUpdateException,
    EndImageException,
    EndpointStatisticsException,
    GetFeaturesException,
    GetImageRequestItemException,
    GetRegionRequestItemException,
    InvalidRegionRequestException,
    IsImageCompleteException,
    RequestedJobsException,
    StartImageException,
    StartRegionException,
    TableSetupException,
    UpdateImageException,
    UpdateRegionException,
)
from .feature_table import FeatureItem, FeatureTable
from .image_request_table import ImageRequestItem, ImageRequestTable
from .job_table import JobItem, JobTable
from .region_request_table import RegionRequestItem, RegionRequestTable
from .requested_jobs_table import ImageRequestStatusRecord, RequestedJobsItem, RequestedJobsTable
from .retry import RetryPolicy
from .tables import TableNames, create_tables, delete_tables

__all__ = [
    "AddFeaturesException",
    "CompleteRegionException",
    "ConfigurationError",
    "DDBBatchWriteException",
    "DDBException",
    "DDBHelper",
    "DDBItem",
    "DDBKey",
    "DDBUpdateException",
    "DatabaseError",
    "EndImageException",
    "EndpointStatisticsException",
    "EndpointStatisticsItem",
    "EndpointStatisticsTable",
    "FeatureItem",
    "FeatureTable",
    "GetFeaturesException",
    "GetImageRequestItemException",
    "GetRegionRequestItemException",
    "ImageRequestItem",
    "ImageRequestStatusRecord",
    "ImageRequestTable",
    "InvalidRegionRequestException",
    "IsImageCompleteException",
    "JobItem",
    "JobTable",
    "RegionRequestItem",
    "RegionRequestTable",
    "RequestedJobsException",
    "RequestedJobsItem",
    "RequestedJobsTable",
    "RetryPolicy",
    "StartImageException",
    "StartRegionException",
    "TableNames",
    "TableSetupException",
    "UpdateImageException",
    "UpdateRegionException",
    "create_tables",
    "delete_tables",
]
