"""Least-privilege IAM policies per worker role, derived from what the repositories' code paths send to DynamoDB.

Two tables drive every policy, so a policy cannot name an action or a table by hand:

* :data:`ROLE_METHODS`: which repository methods each role of the workflow (semantics.md) calls, per table.
* :data:`METHOD_ACTIONS`: which DynamoDB actions each of those methods issues, every branch included (a redelivered
  start reads the stored item, a completion counted already reads the job, a late region start reads the region, an
  update with nothing to write reads the job, a region completion without a start time reads it, ...). It was
  recorded with :class:`ActionRecorder` on DynamoDB Local: ``tests/integration/test_iam_branches.py`` drives every
  branch of every method (late, redelivered, missing and refused ones included) on every run and fails when the code
  sends an action this table (and so the role's policy) lacks; ``tests/integration/test_infra.py`` runs a whole job
  the way the workers do.

Adding a role is one entry of :data:`ROLE_METHODS`; a method new to it needs its branches in the test first.

A role's policy allows, on each table it touches, the union of the actions of its methods on that table, and
nothing on the other tables. No indexes exist, so the resources are the tables' ARNs only.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from model_runner.database.tables import TABLE_MODELS, TableNames

#: The roles and, per table (the short names of ``TABLE_MODELS``), the repository methods their code paths call.
#: image-worker: steps 1-3, 6 and 7 of the workflow; region-worker: steps 4-6 and the per-region calls of step 7
#: (self-throttling counts regions where they are processed); reader: the read commands of ``model-runner-db``;
#: scheduler: the capacity-aware scheduler of docs/scheduler.md (records requests, starts attempts, deletes the
#: records of jobs it gives up). The workers report to the scheduler's table when one is deployed (steps 6, 8 and 9
#: of docs/scheduler.md).
ROLE_METHODS: dict[str, dict[str, tuple[str, ...]]] = {
    "image-worker": {
        "job": ("start_image_request", "update_image_request", "claim_aggregation", "end_image_request"),
        "region": ("start_region_request",),
        "endpoint": (
            "upsert_endpoint",
            "current_in_progress_regions",
            "increment_region_count",
            "decrement_region_count",
        ),
        "feature": ("aggregate_features",),
        "requested": ("update_request_details", "complete_request"),
    },
    "region-worker": {
        "job": ("complete_region_request", "claim_aggregation", "end_image_request"),
        "region": (
            "start_region_request",
            "get_region_request",
            "add_tile",
            "add_tiles",
            "update_region_request",
            "complete_region_request",
        ),
        "endpoint": ("current_in_progress_regions", "increment_region_count", "decrement_region_count"),
        "feature": ("add_features", "aggregate_features"),
        "requested": ("complete_region", "complete_request"),
    },
    "reader": {  # status, regions, features, endpoints (the last scans the bound model: ``model.scan``), requests
        "job": ("get_image_request",),
        "region": ("query_items",),
        "endpoint": ("model.scan",),
        "feature": ("write_feature_collection",),
        "requested": ("get_outstanding_requests",),
    },
    "scheduler": {
        "requested": ("add_new_request", "get_outstanding_requests", "start_next_attempt", "complete_request"),
    },
}

#: DynamoDB actions (IAM names, without the ``dynamodb:`` prefix) each repository method issues, every branch
#: included. Recorded on DynamoDB Local by tests/integration/test_iam_branches.py, which fails when the code drifts.
METHOD_ACTIONS: dict[tuple[str, str], frozenset[str]] = {
    ("job", "start_image_request"): frozenset({"PutItem", "GetItem"}),
    ("job", "update_image_request"): frozenset({"UpdateItem", "GetItem"}),
    ("job", "complete_region_request"): frozenset({"UpdateItem", "GetItem"}),
    ("job", "claim_aggregation"): frozenset({"UpdateItem", "GetItem"}),
    ("job", "end_image_request"): frozenset({"GetItem", "UpdateItem"}),
    ("job", "get_image_request"): frozenset({"GetItem"}),
    ("region", "start_region_request"): frozenset({"UpdateItem", "GetItem"}),
    ("region", "get_region_request"): frozenset({"GetItem"}),
    ("region", "add_tile"): frozenset({"UpdateItem", "GetItem"}),
    ("region", "update_region_request"): frozenset({"UpdateItem"}),
    ("region", "complete_region_request"): frozenset({"UpdateItem", "GetItem"}),
    ("region", "query_items"): frozenset({"Query"}),
    ("endpoint", "upsert_endpoint"): frozenset({"UpdateItem"}),
    ("endpoint", "current_in_progress_regions"): frozenset({"GetItem"}),
    ("endpoint", "increment_region_count"): frozenset({"UpdateItem"}),
    ("endpoint", "decrement_region_count"): frozenset({"UpdateItem"}),
    ("endpoint", "model.scan"): frozenset({"Scan"}),
    ("feature", "add_features"): frozenset({"BatchWriteItem"}),
    ("feature", "aggregate_features"): frozenset({"Query"}),
    ("feature", "write_feature_collection"): frozenset({"Query"}),
    ("region", "add_tiles"): frozenset({"UpdateItem", "GetItem"}),
    ("requested", "add_new_request"): frozenset({"PutItem", "GetItem"}),
    ("requested", "update_request_details"): frozenset({"UpdateItem"}),
    ("requested", "get_outstanding_requests"): frozenset({"Scan", "Query"}),
    ("requested", "start_next_attempt"): frozenset({"UpdateItem", "GetItem"}),
    ("requested", "complete_region"): frozenset({"UpdateItem", "GetItem"}),
    ("requested", "complete_request"): frozenset({"DeleteItem"}),
}

#: IAM policy language version.
POLICY_VERSION = "2012-10-17"

#: The item kinds of TransactWriteItems and the IAM action each needs (a transaction has no action of its own).
_TRANSACT_WRITE_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def roles() -> list[str]:
    """Return the role names, in the order of :data:`ROLE_METHODS`.

    :return: List[str] = the roles
    """
    return list(ROLE_METHODS)


def _check_roles(selected: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(selected))
    unknown = [role for role in chosen if role not in ROLE_METHODS]
    if unknown or not chosen:
        raise ValueError(f"unknown role {', '.join(unknown) or '(none)'}: choose from {', '.join(ROLE_METHODS)}")
    return chosen


def role_actions(selected: str | Iterable[str]) -> dict[str, frozenset[str]]:
    """Return, per table, the DynamoDB actions a role (or the union of several roles) needs.

    :param selected: Union[str, Iterable[str]] = a role of :data:`ROLE_METHODS`, or several
    :return: Dict[str, FrozenSet[str]] = table short name (``job``, ``region``, ...) to IAM action names, in the order
        of ``TABLE_MODELS``; tables the roles do not touch are left out
    :raises ValueError: for an unknown role, or a method missing from :data:`METHOD_ACTIONS`
    """
    chosen = _check_roles([selected] if isinstance(selected, str) else selected)
    needed: dict[str, set[str]] = defaultdict(set)
    for role in chosen:
        for table, methods in ROLE_METHODS[role].items():
            for method in methods:
                if (table, method) not in METHOD_ACTIONS:
                    raise ValueError(f"no recorded DynamoDB actions for {table} {method}: record them first")
                needed[table] |= METHOD_ACTIONS[(table, method)]
    return {table: frozenset(needed[table]) for table in TABLE_MODELS if needed.get(table)}


def statement_id(table: str) -> str:
    """Return the statement id (Sid) of a table's statement: the model's name with Table for Item (``JobTable``).

    :param table: str = table short name of ``TABLE_MODELS``
    :return: str = an alphanumeric Sid, also the table's logical id in the CloudFormation template
    """
    model = TABLE_MODELS[table][0]
    name = model.__name__
    return (name[: -len("Item")] if name.endswith("Item") else name) + "Table"


def policy_statements(selected: str | Iterable[str], resources: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the Allow statements of a role's policy, one per table, with the given resource for each table.

    :param selected: Union[str, Iterable[str]] = a role, or several (their union)
    :param resources: Mapping[str, Any] = table short name to its resource: an ARN, or a CloudFormation intrinsic
    :return: List[Dict[str, Any]] = the statements
    :raises ValueError: for an unknown role
    """
    return [
        {
            "Sid": statement_id(table),
            "Effect": "Allow",
            "Action": [f"dynamodb:{action}" for action in sorted(actions)],
            "Resource": resources[table],
        }
        for table, actions in role_actions(selected).items()
    ]


def table_arn(table_name: str, region: str = "*", account_id: str = "*", partition: str = "aws") -> str:
    """Return the ARN of a DynamoDB table.

    :param table_name: str = the table name
    :param region: str = the region; ``*`` for any
    :param account_id: str = the account; ``*`` for any
    :param partition: str = aws, aws-cn or aws-us-gov
    :return: str = ``arn:PARTITION:dynamodb:REGION:ACCOUNT:table/NAME``
    """
    return f"arn:{partition}:dynamodb:{region}:{account_id}:table/{table_name}"


def policy_document(
    selected: str | Iterable[str],
    names: TableNames,
    region: str = "*",
    account_id: str = "*",
    partition: str = "aws",
) -> dict[str, Any]:
    """Return the least-privilege IAM policy document of a role (or of several roles, for a worker that is both).

    :param selected: Union[str, Iterable[str]] = image-worker, region-worker, reader, or several of them
    :param names: TableNames = the table names the workers use
    :param region: str = the region of the tables; ``*`` for any
    :param account_id: str = the account of the tables; ``*`` for any
    :param partition: str = aws, aws-cn or aws-us-gov
    :return: Dict[str, Any] = the policy document (Version and Statement)
    :raises ValueError: for an unknown role
    """
    arns = {table: table_arn(name, region, account_id, partition) for table, name in names.as_dict().items()}
    return {"Version": POLICY_VERSION, "Statement": policy_statements(selected, arns)}


# -- recording: which actions a piece of code sends -----------------------------------------------------------------


def iam_actions(operation: str, params: Mapping[str, Any]) -> dict[str, set[str]]:
    """Return the IAM actions a DynamoDB API call needs, per table name.

    Most operations need the action of their own name; a transaction needs the actions of its items.

    :param operation: str = the API operation name (``PutItem``, ``BatchWriteItem``, ...)
    :param params: Mapping[str, Any] = the call's API parameters
    :return: Dict[str, Set[str]] = table name to IAM action names
    """
    needed: dict[str, set[str]] = defaultdict(set)
    if operation == "TransactWriteItems":
        for entry in params.get("TransactItems", []):
            for kind, request in entry.items():
                needed[request["TableName"]].add(_TRANSACT_WRITE_ACTIONS[kind])
    elif operation == "TransactGetItems":
        for entry in params.get("TransactItems", []):
            needed[entry["Get"]["TableName"]].add("GetItem")
    elif "RequestItems" in params:
        for table_name in params["RequestItems"]:
            needed[table_name].add(operation)
    elif "TableName" in params:
        needed[params["TableName"]].add(operation)
    else:
        needed["*"].add(operation)
    return dict(needed)


@dataclass
class ActionRecorder:
    """Records the DynamoDB actions sent through botocore clients, labelled with the role and method running.

    It registers a handler for ``before-parameter-build.dynamodb`` on each client given to :meth:`attach` (botocore's
    public event API; nothing is patched). :meth:`running` labels the calls made inside it, in every thread (a
    repository may fan out to a thread pool), so run labelled blocks one at a time.

    :param calls: Dict[Tuple[str, str], Dict[str, Set[str]]] = (role, method label) to table name to IAM actions
    """

    calls: dict[tuple[str, str], dict[str, set[str]]] = field(default_factory=dict)
    _label: tuple[str, str] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _clients: list[Any] = field(default_factory=list, repr=False)

    def attach(self, client: Any) -> None:
        """Record the calls of a botocore DynamoDB client (a repository's ``client``); attaching twice is harmless.

        :param client: Any = the botocore client
        """
        if any(known is client for known in self._clients):
            return
        client.meta.events.register("before-parameter-build.dynamodb", self._on_call, unique_id=f"recorder-{id(self)}")
        self._clients.append(client)

    def detach(self) -> None:
        """Stop recording on every attached client."""
        for client in self._clients:
            client.meta.events.unregister("before-parameter-build.dynamodb", unique_id=f"recorder-{id(self)}")
        self._clients.clear()

    @contextmanager
    def running(self, role: str, label: str) -> Iterator[None]:
        """Label the calls made inside the block (the outermost label wins).

        :param role: str = the role whose code runs
        :param label: str = what runs, such as ``job.start_image_request``
        :return: Iterator[None] = the block
        """
        outer = self._label
        if outer is None:
            self._label = (role, label)
        try:
            yield
        finally:
            if outer is None:
                self._label = None

    def _on_call(self, params: Mapping[str, Any], model: Any, **_: Any) -> None:
        label = self._label or ("", "")
        with self._lock:
            per_table = self.calls.setdefault(label, {})
            for table_name, actions in iam_actions(model.name, params).items():
                per_table.setdefault(table_name, set()).update(actions)

    def actions(
        self, role: str | None = None, label: str | None = None, tables: Sequence[str] | None = None
    ) -> dict[str, set[str]]:
        """Return the actions recorded, per table name, for a role and/or a label (every call when both are None).

        :param role: Optional[str] = only calls of this role
        :param label: Optional[str] = only calls with this label
        :param tables: Optional[Sequence[str]] = only these table names
        :return: Dict[str, Set[str]] = table name to IAM action names
        """
        merged: dict[str, set[str]] = defaultdict(set)
        for (call_role, call_label), per_table in self.calls.items():
            if (role is None or call_role == role) and (label is None or call_label == label):
                for table_name, actions in per_table.items():
                    if tables is None or table_name in tables:
                        merged[table_name] |= actions
        return dict(merged)
