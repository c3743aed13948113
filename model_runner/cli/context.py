"""What every command needs: where DynamoDB is, the table names, and the repositories built on them.

The global options follow the AWS CLI: ``--endpoint-url``, ``--region``, ``--profile``; table names come from
``--job-table`` and its siblings, then ``--table-prefix`` + the default names, then the variables JOB_TABLE,
REGION_REQUEST_TABLE, ENDPOINT_TABLE and FEATURE_TABLE, then the default names. Nothing is read before a command
runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from model_runner.database import (
    EndpointStatisticsTable,
    FeatureTable,
    JobTable,
    RegionRequestTable,
    RequestedJobsTable,
    RetryPolicy,
    TableNames,
)

#: Retries of the command line: a person is waiting, so an unreachable endpoint fails within a few seconds.
CLI_RETRY_POLICY = RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.5, max_total=2.0)
#: Seconds to wait for a connection and for an answer.
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 20.0
#: Region used for a local endpoint when none is configured (DynamoDB Local accepts any).
LOCAL_REGION = "us-east-1"
#: Credentials used for a local endpoint when none are configured (DynamoDB Local accepts any).
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "0.0.0.0")


def environment_endpoint() -> str | None:
    """Return the endpoint configured in the environment (AWS_ENDPOINT_URL_DYNAMODB, then AWS_ENDPOINT_URL).

    :return: Optional[str] = the endpoint URL, None when none is set
    """
    return os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get("AWS_ENDPOINT_URL") or None


def check_endpoint_url(url: str, source: str) -> str:
    """Check that an endpoint is a URL botocore can use: ``http://`` or ``https://`` and a host.

    :param url: str = the endpoint
    :param source: str = where it came from, for the message (``--endpoint-url``, ``AWS_ENDPOINT_URL_DYNAMODB``)
    :return: str = the URL without a trailing slash
    :raises CliError: (exit status 2) naming the value, where it came from, and the expected form
    """
    from .errors import EXIT_USAGE, CliError

    parsed = urlparse(url)
    try:
        parsed.port  # noqa: B018  (raises ValueError for a port that is not a number)
        valid_port = True
    except ValueError:
        valid_port = False
    if parsed.scheme not in ("http", "https") or not parsed.hostname or not valid_port:
        raise CliError(
            f"{source} {url!r} is not an endpoint URL: expected http://HOST[:PORT] or https://HOST[:PORT], "
            "e.g. http://127.0.0.1:8000",
            EXIT_USAGE,
        )
    return url.rstrip("/")


def is_local(endpoint_url: str | None) -> bool:
    """Tell whether an endpoint is on this machine (DynamoDB Local).

    :param endpoint_url: Optional[str] = the endpoint URL
    :return: bool = True for http(s)://127.0.0.1, localhost or ::1
    """
    if not endpoint_url:
        return False
    return (urlparse(endpoint_url).hostname or "") in _LOOPBACK


@dataclass(frozen=True)
class Context:
    """The resolved global options of one command.

    :param endpoint_url: Optional[str] = the endpoint (option, else environment); None for AWS's default
    :param region: Optional[str] = the region (option, else environment, else us-east-1 for a local endpoint)
    :param profile: Optional[str] = the AWS profile given with --profile
    :param names: TableNames = the four table names
    :param as_json: bool = print JSON instead of tables
    """

    endpoint_url: str | None
    region: str | None
    profile: str | None
    names: TableNames
    as_json: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Context:
        """Resolve the global options of parsed arguments, with the environment as fallback.

        :param args: argparse.Namespace = the parsed arguments
        :return: Context = the resolved options
        :raises CliError: when the endpoint is not a URL
        """
        endpoint = getattr(args, "endpoint_url", None)
        if endpoint:
            endpoint = check_endpoint_url(endpoint, "--endpoint-url")
        elif environment_endpoint():
            source = "AWS_ENDPOINT_URL_DYNAMODB" if os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") else "AWS_ENDPOINT_URL"
            endpoint = check_endpoint_url(environment_endpoint() or "", source)
        region = getattr(args, "region", None) or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region is None and is_local(endpoint):
            region = LOCAL_REGION
        names = TableNames.resolve(
            prefix=getattr(args, "table_prefix", None),
            job=getattr(args, "job_table", None),
            region=getattr(args, "region_table", None),
            endpoint=getattr(args, "endpoint_table", None),
            feature=getattr(args, "feature_table", None),
            requested=getattr(args, "requested_table", None),
        )
        return cls(
            endpoint_url=endpoint.rstrip("/") if endpoint else None,
            region=region,
            profile=getattr(args, "profile", None),
            names=names,
            as_json=bool(getattr(args, "json", False)),
        )

    @property
    def where(self) -> str:
        """The endpoint as a person reads it."""
        if self.endpoint_url:
            return self.endpoint_url
        return f"DynamoDB in {self.region}" if self.region else "DynamoDB"

    def command_prefix(self) -> str:
        """Return the command line that reaches the same tables, for hints (``model-runner-db --endpoint-url ...``).

        :return: str = the command and its global options
        """
        parts = ["model-runner-db"]
        if self.endpoint_url and self.endpoint_url != environment_endpoint():
            parts += ["--endpoint-url", self.endpoint_url]
        defaults = TableNames.resolve()
        for option, name, default in (
            ("--job-table", self.names.job, defaults.job),
            ("--region-table", self.names.region, defaults.region),
            ("--endpoint-table", self.names.endpoint, defaults.endpoint),
            ("--feature-table", self.names.feature, defaults.feature),
            ("--requested-table", self.names.requested, defaults.requested),
        ):
            if name != default:
                parts += [option, name]
        return " ".join(parts)

    @contextlib.contextmanager
    def aws_environment(self) -> Iterator[None]:
        """Set the environment botocore reads for the duration of a command, and restore it afterwards.

        ``--profile`` becomes AWS_PROFILE. For a local endpoint without configured credentials, placeholder
        credentials are set (DynamoDB Local accepts any).

        :return: Iterator[None] = nothing; the environment is the effect
        """
        changes: dict[str, str] = {}
        if self.profile:
            changes["AWS_PROFILE"] = self.profile
        has_credentials = bool(os.environ.get("AWS_ACCESS_KEY_ID")) or bool(
            self.profile or os.environ.get("AWS_PROFILE")
        )
        if is_local(self.endpoint_url) and not has_credentials:
            changes.update(LOCAL_CREDENTIALS)
        saved = {name: os.environ.get(name) for name in changes}
        os.environ.update(changes)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def _options(self) -> dict[str, Any]:
        return {
            "host": self.endpoint_url,
            "region": self.region,
            "retry_policy": CLI_RETRY_POLICY,
            "connect_timeout_seconds": CONNECT_TIMEOUT,
            "read_timeout_seconds": READ_TIMEOUT,
        }

    def job_table(self) -> JobTable:
        """Return the job repository.

        :return: JobTable = the repository
        """
        return JobTable(self.names.job, **self._options())

    def region_table(self) -> RegionRequestTable:
        """Return the region repository.

        :return: RegionRequestTable = the repository
        """
        return RegionRequestTable(self.names.region, **self._options())

    def endpoint_table(self) -> EndpointStatisticsTable:
        """Return the endpoint statistics repository.

        :return: EndpointStatisticsTable = the repository
        """
        return EndpointStatisticsTable(self.names.endpoint, **self._options())

    def feature_table(self) -> FeatureTable:
        """Return the feature repository.

        :return: FeatureTable = the repository
        """
        return FeatureTable(self.names.feature, **self._options())

    def requested_jobs_table(self) -> RequestedJobsTable:
        """Return the scheduler's requested-jobs repository.

        :return: RequestedJobsTable = the repository
        """
        return RequestedJobsTable(self.names.requested, **self._options())
