"""The image request table: upstream OversightML Model Runner's name for the job table.

:class:`ImageRequestItem` and :class:`ImageRequestTable` are :class:`~model_runner.database.job_table.JobItem` and
:class:`~model_runner.database.job_table.JobTable` under the newer names: the same table, the same attributes, the
same operations and guarantees (one code path, no copy). The one difference is the positional order of the item:
upstream dropped ``extents``, so ``ImageRequestItem(image_id, job_id, ..., roi_wkt)`` takes the fields without it.
``extents`` is still an attribute, read where it is stored and writable by keyword.

The table name comes from the argument, else ``IMAGE_REQUEST_TABLE`` or ``JOB_TABLE`` (both may be set to the same
name; different names are refused with ConfigurationError).
"""

from __future__ import annotations

from typing import Any, ClassVar

from .ddb_helper import DDBItem
from .job_table import JobItem, JobTable


class ImageRequestItem(JobItem):
    """ImageRequestItem is a JobItem under upstream's name, with upstream's positional order (no ``extents``).

    Positional order: image_id, job_id, image_url, image_read_role, model_invoke_mode, start_time, expire_time,
    end_time, region_success, region_error, region_count, width, height, tile_size, tile_overlap, model_name, outputs,
    processing_duration, feature_properties, feature_distillation_option, roi_wkt.
    """

    classic_fields: ClassVar[tuple[str, ...]] = tuple(name for name in JobItem.classic_fields if name != "extents")


class ImageRequestTable(JobTable):
    """ImageRequestTable is a JobTable under upstream's name: every method is JobTable's, returning ImageRequestItems.

    :param table_name: Optional[str] = the name of the table; IMAGE_REQUEST_TABLE or JOB_TABLE when None
    :param kwargs: Any = connection options of :class:`~model_runner.database.ddb_helper.DDBHelper`
    """

    item_class: ClassVar[type[DDBItem]] = ImageRequestItem

    def __init__(self, table_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(table_name, **kwargs)
