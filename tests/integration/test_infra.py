"""The deployment artefacts: the CloudFormation template and the IAM policies, checked against the code.

* The template passes cfn-lint (informational checks included), and its key schema, attribute definitions and TTL
  attribute are the models'. Tables created on DynamoDB Local from the template's KeySchema and TTL work with the
  repositories.
* The policies: one image job runs through the public API the way the workflow of semantics.md runs it (redeliveries
  and a crashed region included), with every repository call labelled by the role that makes it and every DynamoDB
  call recorded through botocore's events. The recording must stay within METHOD_ACTIONS per method and each role's
  policy, and equal ROLE_METHODS per role (test_iam_branches.py drives every branch and checks the actions exactly).
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geojson
import pytest
import yaml
from cfnlint.api import ManualArgs, lint

from model_runner.api import ImageRequest
from model_runner.cli.context import Context
from model_runner.cli.infra import run
from model_runner.cli.main import build_parser
from model_runner.cli.main import main as cli_main
from model_runner.common import ImageRegion, RequestStatus, TileState
from model_runner.database import (
    EndpointStatisticsTable,
    FeatureTable,
    JobItem,
    JobTable,
    RegionRequestItem,
    RegionRequestTable,
    RequestedJobsTable,
    TableNames,
)
from model_runner.database.tables import TABLE_MODELS
from model_runner.infra import (
    ActionRecorder,
    TemplateOptions,
    build_template,
    policy_document,
    render,
    table_properties,
)
from model_runner.infra.iam import METHOD_ACTIONS, ROLE_METHODS, role_actions, statement_id

pytestmark = pytest.mark.integration

EXPIRE_DAYS = 3
DAY = 24 * 3600


def _lint(text: str) -> list[str]:
    matches = lint(text, config=ManualArgs(regions=["us-east-1", "eu-west-1"], include_checks=["I"]))
    return [f"{match.rule.id} {match.message} (line {match.linenumber})" for match in matches]


def _tables(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Table short name to the properties of its resource, by the tag the template writes."""
    found = {}
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::DynamoDB::Table":
            properties = resource["Properties"]
            tags = {tag["Key"]: tag["Value"] for tag in properties["Tags"]}
            found[tags["model-runner:table"]] = properties
    return found


# -- the template ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        TemplateOptions(),
        TemplateOptions(table_prefix="dev-", ttl_days=30, pitr=False),
        TemplateOptions(billing_mode="PROVISIONED", read_capacity=10, write_capacity=20),
        TemplateOptions(deletion_protection=True, with_policies=True),
    ],
    ids=["default", "prefix-no-pitr", "provisioned", "protected-with-policies"],
)
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_cfn_lint_accepts_the_template(options: TemplateOptions, fmt: str) -> None:
    assert _lint(render(build_template(options), fmt)) == []


def test_keys_and_ttl_are_the_models() -> None:
    tables = _tables(build_template())
    assert set(tables) == set(TABLE_MODELS)
    for table, (model, _, _) in TABLE_MODELS.items():
        schema = model._get_schema()
        assert tables[table]["KeySchema"] == [dict(k) for k in schema["key_schema"]]
        assert tables[table]["AttributeDefinitions"] == [dict(d) for d in schema["attribute_definitions"]]
    # the classic deployment's drift: its endpoint table was keyed on hash_key while the code uses endpoint
    assert tables["endpoint"]["KeySchema"] == [{"AttributeName": "endpoint", "KeyType": "HASH"}]
    assert "TimeToLiveSpecification" not in tables["endpoint"]
    for table in ("job", "region", "feature"):
        assert tables[table]["TimeToLiveSpecification"] == {"AttributeName": "expire_time", "Enabled": True}


def test_options_reach_the_template() -> None:
    default = build_template()
    for properties in _tables(default).values():
        assert properties["BillingMode"] == "PAY_PER_REQUEST"
        assert "ProvisionedThroughput" not in properties
        assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert properties["SSESpecification"]["SSEEnabled"] is True
        assert properties["DeletionProtectionEnabled"] is False
    assert {r["DeletionPolicy"] for r in default["Resources"].values()} == {"Delete"}
    assert default["Parameters"]["ExpireDays"]["Default"] == 7
    assert default["Parameters"]["JobTableName"]["Default"] == "ImageProcessingJobStatus"

    custom = build_template(
        TemplateOptions(
            table_prefix="dev-",
            ttl_days=30,
            pitr=False,
            billing_mode="PROVISIONED",
            read_capacity=10,
            write_capacity=20,
            deletion_protection=True,
        )
    )
    for properties in _tables(custom).values():
        assert properties["BillingMode"] == "PROVISIONED"
        assert properties["ProvisionedThroughput"] == {"ReadCapacityUnits": 10, "WriteCapacityUnits": 20}
        assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": False}
        assert properties["DeletionProtectionEnabled"] is True
    assert {r["DeletionPolicy"] for r in custom["Resources"].values()} == {"Retain"}
    assert custom["Parameters"]["ExpireDays"]["Default"] == 30
    defaults = {name: p["Default"] for name, p in custom["Parameters"].items() if name.endswith("TableName")}
    assert defaults == {
        "JobTableName": "dev-ImageProcessingJobStatus",
        "RegionRequestTableName": "dev-RegionProcessingJobStatus",
        "EndpointStatisticsTableName": "dev-EndpointStatisticsTable",
        "FeatureTableName": "dev-ImageProcessingFeatures",
        "RequestedJobsTableName": "dev-OutstandingImageRequests",
    }


def test_outputs_give_every_name_and_arn() -> None:
    outputs = build_template()["Outputs"]
    for table in TABLE_MODELS:
        logical_id = statement_id(table)
        assert outputs[f"{logical_id}Name"]["Value"] == {"Ref": logical_id}
        assert outputs[f"{logical_id}Arn"]["Value"] == {"Fn::GetAtt": [logical_id, "Arn"]}
    assert outputs["ExpireDays"]["Value"] == {"Ref": "ExpireDays"}


def test_bound_models_name_their_tables() -> None:
    names = TableNames.resolve(prefix="bound-")
    where: dict[str, Any] = {"host": "http://127.0.0.1:9", "region": "us-east-1"}  # binding connects nowhere
    repositories = [JobTable(names.job, **where), RegionRequestTable(names.region, **where)]
    template = build_template(models={"job": repositories[0].model, "region": repositories[1].model})
    assert set(_tables(template)) == {"job", "region"}
    assert template["Parameters"]["JobTableName"]["Default"] == names.job
    assert template["Parameters"]["RegionRequestTableName"]["Default"] == names.region
    assert _lint(render(template)) == []


def test_managed_policies_in_the_template_are_the_roles_policies() -> None:
    template = build_template(TemplateOptions(with_policies=True))
    for role in ROLE_METHODS:
        logical_id = "".join(part.capitalize() for part in role.split("-")) + "Policy"
        statements = template["Resources"][logical_id]["Properties"]["PolicyDocument"]["Statement"]
        allowed = {s["Resource"]["Fn::GetAtt"][0]: {a.split(":")[1] for a in s["Action"]} for s in statements}
        assert allowed == {statement_id(table): set(actions) for table, actions in role_actions(role).items()}
        assert template["Outputs"][f"{logical_id}Arn"]["Value"] == {"Ref": logical_id}


# -- the commands ---------------------------------------------------------------------------------------------------


def test_cloudformation_command_yaml_and_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    options = ["--table-prefix", "dev-", "--ttl-days", "14", "--no-pitr", "--billing-mode", "provisioned"]
    assert run(["cloudformation", *options, "--format", "json"]) == 0
    from_json = json.loads(capsys.readouterr().out)
    assert run(["cloudformation", *options]) == 0
    from_yaml = yaml.safe_load(capsys.readouterr().out)
    assert from_json == from_yaml
    assert from_json["Parameters"]["ExpireDays"]["Default"] == 14
    assert from_json["Parameters"]["FeatureTableName"]["Default"] == "dev-ImageProcessingFeatures"
    assert {t["BillingMode"] for t in _tables(from_json).values()} == {"PROVISIONED"}
    assert {
        t["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] for t in _tables(from_json).values()
    } == {False}

    target = tmp_path / "tables.yaml"
    assert run(["cloudformation", "--job-table", "Jobs", "-o", str(target)]) == 0
    assert capsys.readouterr().out == ""
    written = target.read_text()
    assert yaml.safe_load(written)["Parameters"]["JobTableName"]["Default"] == "Jobs"
    assert _lint(written) == []


def test_cloudformation_command_falls_back_to_json_without_pyyaml(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("model_runner.cli.infra.yaml_available", lambda: False)
    assert run(["cloudformation"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == build_template()
    assert "PyYAML" in captured.err


def test_cloudformation_command_refuses_bad_values(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in (["--ttl-days", "0"], ["--read-capacity", "x"], ["--billing-mode", "free"]):
        with pytest.raises(SystemExit) as exit_info:
            run(["cloudformation", *bad])
        assert exit_info.value.code == 2
        assert "error:" in capsys.readouterr().err


def test_iam_policy_command(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("JOB_TABLE", "REGION_REQUEST_TABLE", "ENDPOINT_TABLE", "FEATURE_TABLE", "IMAGE_REQUEST_TABLE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("OUTSTANDING_IMAGE_REQUEST_TABLE", raising=False)
    args = ["iam-policy", "--role", "reader", "--region", "eu-west-1", "--account-id", "111122223333"]
    assert run([*args, "--table-prefix", "prod-", "--feature-table", "Detections"]) == 0
    document = json.loads(capsys.readouterr().out)
    resources = {s["Sid"]: s["Resource"] for s in document["Statement"]}
    assert resources == {
        "JobTable": "arn:aws:dynamodb:eu-west-1:111122223333:table/prod-ImageProcessingJobStatus",
        "RegionRequestTable": "arn:aws:dynamodb:eu-west-1:111122223333:table/prod-RegionProcessingJobStatus",
        "EndpointStatisticsTable": "arn:aws:dynamodb:eu-west-1:111122223333:table/prod-EndpointStatisticsTable",
        "FeatureTable": "arn:aws:dynamodb:eu-west-1:111122223333:table/Detections",
        "RequestedJobsTable": "arn:aws:dynamodb:eu-west-1:111122223333:table/prod-OutstandingImageRequests",
    }
    assert all(a.split(":")[1] in {"GetItem", "Query", "Scan"} for s in document["Statement"] for a in s["Action"])

    # the workers' environment names the tables and the region; a worker playing both roles gets the union
    monkeypatch.setenv("JOB_TABLE", "EnvJobs")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    assert run(["iam-policy", "--role", "image-worker", "--role", "region-worker"]) == 0
    captured = capsys.readouterr()
    union = json.loads(captured.out)
    assert "--account-id" in captured.err
    assert union["Statement"][0]["Resource"] == "arn:aws:dynamodb:us-east-1:*:table/EnvJobs"
    both = role_actions(["image-worker", "region-worker"])
    for statement in union["Statement"]:
        table = next(t for t in TABLE_MODELS if statement_id(t) == statement["Sid"])
        assert {a.split(":")[1] for a in statement["Action"]} == both[table]
        assert both[table] == role_actions("image-worker").get(table, set()) | role_actions("region-worker")[table]

    with pytest.raises(SystemExit):
        run(["iam-policy", "--role", "admin"])
    assert "invalid choice" in capsys.readouterr().err


# -- tables created from the template, and the workflow on them -----------------------------------------------------


def _create_from_template(client: Any, names: TableNames, template: dict[str, Any]) -> None:
    """Create each table with the template's KeySchema and AttributeDefinitions, and its TTL specification."""
    for table, properties in _tables(template).items():
        table_name = names.as_dict()[table]
        client.create_table(
            TableName=table_name,
            KeySchema=properties["KeySchema"],
            AttributeDefinitions=properties["AttributeDefinitions"],
            BillingMode=properties["BillingMode"],
        )
        client.get_waiter("table_exists").wait(TableName=table_name)
        if "TimeToLiveSpecification" in properties:
            client.update_time_to_live(
                TableName=table_name, TimeToLiveSpecification=properties["TimeToLiveSpecification"]
            )


@dataclass
class Repositories:
    """The repositories on the tables created from the template."""

    names: TableNames
    jobs: JobTable
    regions: RegionRequestTable
    endpoints: EndpointStatisticsTable
    features: FeatureTable
    requested: RequestedJobsTable

    def by_table(self) -> dict[str, Any]:
        return {
            "job": self.jobs,
            "region": self.regions,
            "endpoint": self.endpoints,
            "feature": self.features,
            "requested": self.requested,
        }


@pytest.fixture(scope="module")
def template_tables(dynamodb_local_endpoint: str) -> Iterator[Repositories]:
    """The tables created from the template (ExpireDays 3), with repositories using expire_days=3."""
    names = TableNames.resolve(prefix=f"cfn{uuid.uuid4().hex[:8]}-")
    template = build_template(TemplateOptions(ttl_days=EXPIRE_DAYS))
    kwargs: dict[str, Any] = {"host": dynamodb_local_endpoint, "expire_days": EXPIRE_DAYS}
    repositories = Repositories(
        names=names,
        jobs=JobTable(names.job, **kwargs),
        regions=RegionRequestTable(names.region, **kwargs),
        endpoints=EndpointStatisticsTable(names.endpoint, **kwargs),
        features=FeatureTable(names.feature, (512, 512), (32, 32), **kwargs),
        requested=RequestedJobsTable(names.requested, host=dynamodb_local_endpoint),
    )
    client = repositories.jobs.client
    _create_from_template(client, names, template)
    yield repositories
    for table_name in names.as_dict().values():
        client.delete_table(TableName=table_name)


class Labelled:
    """A repository whose method calls are labelled for the recorder with the role making them."""

    def __init__(self, repository: Any, table: str, role: str, workflow: Workflow) -> None:
        self._repository = repository
        self._table = table
        self._role = role
        self._workflow = workflow

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return self._labelled(name, getattr(self._repository, name))

    def scan_model(self) -> list[Any]:
        """The bound model's Scan, as ``model-runner-db endpoints`` runs it."""
        return self._labelled("model.scan", self._repository.model.scan)()  # type: ignore[no-any-return]

    def _labelled(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self._workflow.called[self._role][self._table].add(name)
            with self._workflow.recorder.running(self._role, f"{self._table}.{name}"):
                result = method(*args, **kwargs)
                return list(result) if isinstance(result, Iterator) else result  # lazy results read here

        return call


@dataclass
class Workflow:
    """One image job through the public API, the way the workers of each role run it (semantics.md)."""

    repositories: Repositories
    recorder: ActionRecorder
    called: dict[str, dict[str, set[str]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(set)))
    features_written: set[str] = field(default_factory=set)

    def as_role(self, role: str) -> Any:
        tables = self.repositories.by_table()
        return type("Role", (), {table: Labelled(repo, table, role, self) for table, repo in tables.items()})

    def features_of(self, image_id: str, tile: ImageRegion) -> list[geojson.Feature]:
        (row, col), _ = tile
        features = []
        for k in range(3):
            x, y = col + 40 * k + 5, row + 40 * k + 5
            feature_id = f"{image_id}:{row}:{col}:{k}"
            self.features_written.add(feature_id)
            features.append(
                geojson.Feature(
                    id=feature_id,
                    geometry=geojson.Point((10.0 + x / 1e5, 20.0 - y / 1e5)),
                    properties={
                        "image_id": image_id,
                        "bounds_imcoords": [x, y, x + 20, y + 20],
                        "detection_score": 0.5 + k / 10,
                        "feature_types": {"vehicle": 0.5 + k / 10},
                    },
                )
            )
        return features

    def process_region(
        self,
        role: str,
        item: RegionRequestItem,
        endpoint: str,
        failing: set[ImageRegion] | frozenset[ImageRegion] = frozenset(),
        crash_after: int | None = None,
        throttle_role: str | None = None,
        request: ImageRequest | None = None,
    ) -> JobItem | None:
        """Steps 4-5 and the per-region calls of step 7 (by ``throttle_role`` when given): the job as the completion
        returned it, or None when the region was completed already or the worker crashed."""
        worker = self.as_role(role)
        throttle = self.as_role(throttle_role or role)
        image_id, region_id = item.image_id, item.region_id
        existing = worker.region.get_region_request(region_id, image_id)
        if existing is not None and existing.region_status in (RequestStatus.SUCCESS.value, RequestStatus.FAILED.value):
            return None  # a redelivered message of a region already completed
        if throttle.endpoint.current_in_progress_regions(endpoint) >= 4:
            pytest.fail("throttled: the endpoint counts were not kept")
        throttle.endpoint.increment_region_count(endpoint)
        try:
            stored = worker.region.start_region_request(item)
            done = {(tuple(t[0]), tuple(t[1])) for t in stored.succeeded_tiles or []}
            tiles = [((row, col), (512, 512)) for row in (0, 480) for col in (0, 480)]
            failed: list[ImageRegion] = []
            for count, tile in enumerate(tiles):
                if crash_after is not None and count == crash_after:
                    return None  # the worker dies; the message is redelivered
                if tile in done:
                    continue
                if tile in failing:
                    failed.append(tile)
                    continue
                worker.feature.add_features(self.features_of(image_id, tile), source_tile=tile)
                worker.region.add_tile(image_id, region_id, tile, TileState.SUCCEEDED)
                if crash_after is not None:  # the response was lost: the worker sends it again
                    worker.region.add_tile(image_id, region_id, tile, TileState.SUCCEEDED)
            if failed:  # the failed tiles of the region, in one request
                worker.region.add_tiles(image_id, region_id, failed, TileState.FAILED)
            worker.region.update_region_request(
                RegionRequestItem(image_id=image_id, region_id=region_id, total_tiles=len(tiles))
            )
            error = bool(failing)
            job = worker.job.complete_region_request(image_id, error, region_id=region_id)
            if request is not None:  # the scheduler's table counts the region too
                assert worker.requested.complete_region(request, region_id)
            status = RequestStatus.PARTIAL if error else RequestStatus.SUCCESS
            worker.region.complete_region_request(stored, status)
            return job  # type: ignore[no-any-return]
        finally:
            throttle.endpoint.decrement_region_count(endpoint)

    def finish(self, role: str, job: JobItem | None, request: ImageRequest | None = None) -> bool:
        """Step 6: the worker whose completion made the job complete aggregates and ends it (and deletes the
        scheduler's record of the request)."""
        if job is None or not JobTable.is_image_request_complete(job):
            return False
        worker = self.as_role(role)
        if not worker.job.claim_aggregation(job.image_id, f"{role}-{job.image_id}"):
            return False
        # a redelivered last completion reaches another worker, whose claim loses
        assert not worker.job.claim_aggregation(job.image_id, f"redelivered-{job.image_id}")
        aggregated = worker.feature.aggregate_features(job)
        assert {feature["id"] for feature in aggregated} >= {f for f in self.features_written if job.image_id in f}
        worker.job.end_image_request(job.image_id)
        if request is not None:
            worker.requested.complete_request(request)
        return True

    def image_job(self, image_id: str, endpoint: str, inline_only: bool) -> None:
        """Steps 1-3 and 7 by the image worker; the regions by region workers (one crash and redeliveries), or, with
        ``inline_only``, a one-region image processed in line by the image worker, which then finishes the job."""
        request = self.schedule(image_id, endpoint)
        image = self.as_role("image-worker")
        job = JobItem(image_id=image_id, job_id=f"job-{image_id}", model_name=endpoint)
        image.job.start_image_request(job)
        image.job.start_image_request(job)  # redelivered image request
        image.endpoint.upsert_endpoint(endpoint, 4)
        region_count = 1 if inline_only else 3
        image.job.update_image_request(JobItem(image_id=image_id, region_count=region_count, width=2048, height=1024))
        image.requested.update_request_details(request, region_count)
        regions = [
            RegionRequestItem(
                image_id=image_id,
                region_id=f"{image_id}-region-{i}",
                region_bounds=[[0, 1024 * i], [1024, 1024]],
                tile_size=[512, 512],
                tile_overlap=[32, 32],
            )
            for i in range(region_count)
        ]
        for region in regions:
            image.region.start_region_request(region)
        if inline_only:
            # the image worker processes the region in line with the region code (the region-worker's calls); it
            # counts the region for self-throttling itself, and its completion finishes the job
            job_after = self.process_region(
                "region-worker", regions[0], endpoint, throttle_role="image-worker", request=request
            )
            assert self.finish("image-worker", job_after, request)
            return
        assert self.process_region("region-worker", regions[0], endpoint, crash_after=2, request=request) is None
        first = self.process_region("region-worker", regions[0], endpoint, request=request)
        finished = self.finish("region-worker", first, request)
        failing = {((0, 0), (512, 512))}
        second = self.process_region("region-worker", regions[1], endpoint, failing, request=request)
        finished |= self.finish("region-worker", second, request)
        last = self.process_region("region-worker", regions[2], endpoint, request=request)
        finished |= self.finish("region-worker", last, request)
        assert finished
        # a redelivered completion is counted once, and a redelivered region that is complete is skipped
        again = self.as_role("region-worker").job.complete_region_request(
            image_id, False, region_id=regions[2].region_id
        )
        assert (again.region_success, again.region_error) == (2, 1)
        assert self.process_region("region-worker", regions[2], endpoint) is None

    def schedule(self, image_id: str, endpoint: str) -> ImageRequest:
        """The scheduler of docs/scheduler.md: records the request (delivered twice), starts one attempt while a
        second scheduler holding the same record loses, and drops another request it gives up."""
        scheduler = self.as_role("scheduler")
        url = f"s3://imagery/{image_id}.ntf"
        request = ImageRequest(job_id=f"job-{image_id}", image_id=image_id, image_url=url, model_name=endpoint)
        scheduler.requested.add_new_request(request)
        scheduler.requested.add_new_request(request)  # redelivered
        (record,) = [r for r in scheduler.requested.get_outstanding_requests(endpoint) if r.job_id == request.job_id]
        assert scheduler.requested.start_next_attempt(record)
        assert not scheduler.requested.start_next_attempt(record)  # the other scheduler
        given_up = ImageRequest(
            job_id=f"gone-{image_id}", image_id=f"gone-{image_id}", image_url=url, model_name=endpoint
        )
        scheduler.requested.add_new_request(given_up)
        scheduler.requested.complete_request(given_up)
        assert {r.job_id for r in scheduler.requested.get_outstanding_requests()} >= {request.job_id}
        return request

    def read(self, image_id: str, endpoint: str) -> None:
        """What the read commands of model-runner-db read (status, regions, features, endpoints), by the calls they
        make on the repositories."""
        reader = self.as_role("reader")
        job = reader.job.get_image_request(image_id)
        assert job.end_time is not None
        regions = reader.region.query_items(RegionRequestItem(image_id=image_id))
        assert len(regions) == job.region_count
        output = io.StringIO()
        reader.feature.write_feature_collection(image_id, output)
        features = json.loads(output.getvalue())["features"]
        assert {f["id"] for f in features} == {f for f in self.features_written if f.startswith(f"{image_id}:")}
        assert endpoint in {item.endpoint for item in reader.endpoint.scan_model()}
        assert reader.requested.get_outstanding_requests() == []  # every job ended and deleted its record

    def read_with_the_cli(self, image_id: str, endpoint_url: str, output: Path) -> None:
        """The read commands themselves. Their repositories get the bound models (and clients) of a Context built
        from the same options, which the recorder is attached to."""
        names = self.repositories.names
        options = ["--endpoint-url", endpoint_url, "--job-table", names.job, "--region-table", names.region]
        options += ["--endpoint-table", names.endpoint, "--feature-table", names.feature]
        options += ["--requested-table", names.requested]
        context = Context.from_args(build_parser().parse_args([*options, "endpoints"]))
        for repository in (context.job_table(), context.region_table(), context.endpoint_table()):
            self.recorder.attach(repository.client)
        self.recorder.attach(context.feature_table().client)
        self.recorder.attach(context.requested_jobs_table().client)
        for command in (["status", image_id], ["regions", image_id], ["features", image_id, "-o", str(output)]):
            with self.recorder.running("reader", f"cli.{command[0]}"), contextlib.redirect_stdout(io.StringIO()):
                assert cli_main([*options, *command]) == 0
        with self.recorder.running("reader", "cli.endpoints"), contextlib.redirect_stdout(io.StringIO()) as out:
            assert cli_main([*options, "endpoints", "--json"]) == 0
        assert endpoint_url and "endpoint-a" in {entry["endpoint"] for entry in json.loads(out.getvalue())}
        assert len(json.loads(output.read_text())["features"]) > 0
        with self.recorder.running("reader", "cli.requests"), contextlib.redirect_stdout(io.StringIO()) as listed:
            assert cli_main([*options, "requests", "--json"]) == 0
            assert cli_main([*options, "requests", "endpoint-a", "--json"]) == 0
        assert listed.getvalue().split() == ["[]", "[]"]  # every job ended and deleted its record


@pytest.fixture(scope="module")
def recorded(
    template_tables: Repositories, dynamodb_local_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Workflow:
    """The workflow of two image jobs run once on the template's tables, every DynamoDB call recorded."""
    recorder = ActionRecorder()
    for repository in template_tables.by_table().values():
        recorder.attach(repository.client)
    workflow = Workflow(template_tables, recorder)
    try:
        workflow.image_job("img-a", "endpoint-a", inline_only=False)
        workflow.image_job("img-b", "endpoint-a", inline_only=True)
        workflow.read("img-a", "endpoint-a")
        output = tmp_path_factory.mktemp("cli") / "features.geojson"
        workflow.read_with_the_cli("img-a", dynamodb_local_endpoint, output)
    finally:
        recorder.detach()  # the tests' own requests are not the workflow's
    return workflow


def _short_names(names: TableNames, per_table_name: dict[str, set[str]]) -> dict[str, set[str]]:
    short = {table_name: table for table, table_name in names.as_dict().items()}
    return {short[table_name]: actions for table_name, actions in per_table_name.items()}


def test_template_tables_have_the_models_keys_and_ttl(template_tables: Repositories, recorded: Workflow) -> None:
    client = template_tables.jobs.client
    for table, table_name in template_tables.names.as_dict().items():
        model = TABLE_MODELS[table][0]
        description = client.describe_table(TableName=table_name)["Table"]
        assert description["KeySchema"] == [dict(k) for k in model._get_schema()["key_schema"]]
        ttl = client.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
        specification = table_properties(model).get("TimeToLiveSpecification")
        if specification is None:
            assert ttl.get("TimeToLiveStatus", "DISABLED") == "DISABLED"
            continue
        assert ttl["TimeToLiveStatus"] == "ENABLED"
        assert ttl["AttributeName"] == specification["AttributeName"]
        # every item the workflow wrote carries it, in epoch seconds, expire_days (the template's ExpireDays) ahead
        items = client.scan(TableName=table_name, ConsistentRead=True)["Items"]
        assert items
        now = time.time()
        for item in items:
            expires = int(item[ttl["AttributeName"]]["N"])
            assert now + (EXPIRE_DAYS - 1) * DAY < expires <= now + EXPIRE_DAYS * DAY


def test_the_job_ran_to_the_end_on_the_template_tables(template_tables: Repositories, recorded: Workflow) -> None:
    for image_id in ("img-a", "img-b"):
        job = template_tables.jobs.get_image_request(image_id)
        assert job.end_time is not None
        assert (job.region_success or 0) + (job.region_error or 0) == job.region_count
    assert template_tables.endpoints.current_in_progress_regions("endpoint-a") == 0
    retried = template_tables.regions.get_region_request("img-a-region-0", "img-a")
    # started by the image worker, then by the region worker that crashed and by the one it was redelivered to
    assert retried is not None and retried.region_retry_count == 2
    assert retried.succeeded_tile_count == len(retried.succeeded_tiles) == 4


def test_every_call_was_labelled(recorded: Workflow) -> None:
    assert recorded.recorder.actions(role="") == {}


def test_method_actions_are_what_the_methods_send(recorded: Workflow) -> None:
    names = recorded.repositories.names
    seen: dict[tuple[str, str], set[str]] = {}
    for role, per_table in recorded.called.items():
        for table, methods in per_table.items():
            for method in methods:
                sent = _short_names(names, recorded.recorder.actions(role=role, label=f"{table}.{method}"))
                assert set(sent) <= {table}, f"{table}.{method} touched another table: {sorted(sent)}"
                seen.setdefault((table, method), set()).update(sent.get(table, set()))
    # the job takes some branches of each method; every branch is recorded by test_iam_branches.py
    assert set(seen) == set(METHOD_ACTIONS)
    for key, actions in seen.items():
        assert actions <= METHOD_ACTIONS[key], key


def test_role_methods_are_what_each_role_calls(recorded: Workflow) -> None:
    called = {
        role: {table: set(methods) for table, methods in per_table.items()}
        for role, per_table in recorded.called.items()
    }
    expected = {
        role: {table: set(methods) for table, methods in per_table.items()} for role, per_table in ROLE_METHODS.items()
    }
    assert called == expected


@pytest.mark.parametrize("role", list(ROLE_METHODS))
def test_policy_allows_exactly_what_the_role_sends(recorded: Workflow, role: str) -> None:
    names = recorded.repositories.names
    sent = _short_names(names, recorded.recorder.actions(role=role))
    document = policy_document(role, names, region="us-east-1", account_id="123456789012")
    allowed = {}
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        table_name = statement["Resource"].rsplit("table/", 1)[1]
        table = next(t for t, n in names.as_dict().items() if n == table_name)
        allowed[table] = {action.removeprefix("dynamodb:") for action in statement["Action"]}
    # the job needs no action outside the policy, on no other table; that the policy holds no more than the role's
    # methods send in some branch is checked by test_iam_branches.py
    assert set(allowed) == set(sent)
    for table, actions in sent.items():
        assert actions <= allowed[table], table


def test_the_deploying_guide_shows_the_policies_as_they_are() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "deploying.md").read_text(encoding="utf-8")
    rows = {}
    for line in guide.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] in ROLE_METHODS:
            rows[cells[0]] = {
                table: {a.strip() for a in cell.split(",") if a.strip() and a.strip() != "-"}
                for table, cell in zip(TABLE_MODELS, cells[1:], strict=True)
            }
    expected = {
        role: {table: set(role_actions(role).get(table, ())) for table in TABLE_MODELS} for role in ROLE_METHODS
    }
    assert rows == expected


def test_the_read_commands_need_exactly_the_reader_policy(recorded: Workflow) -> None:
    names = recorded.repositories.names
    per_command = {
        command: _short_names(names, recorded.recorder.actions(role="reader", label=f"cli.{command}"))
        for command in ("status", "regions", "features", "endpoints", "requests")
    }
    assert all(per_command.values()), f"a command's requests were not recorded: {per_command}"
    sent: dict[str, set[str]] = defaultdict(set)
    for per_table in per_command.values():
        for table, actions in per_table.items():
            sent[table] |= actions
    assert sent == {table: set(actions) for table, actions in role_actions("reader").items()}


def test_model_runner_db_runs_both_commands(capsys: pytest.CaptureFixture[str]) -> None:
    # global options before the command reach it, as for every command of model-runner-db
    assert cli_main(["--table-prefix", "qa-", "cloudformation", "--format", "json"]) == 0
    template = json.loads(capsys.readouterr().out)
    assert template == build_template(TemplateOptions(table_prefix="qa-"))
    assert cli_main(["--region", "eu-west-1", "--job-table", "J", "iam-policy", "--role", "reader"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["Statement"][0]["Resource"] == "arn:aws:dynamodb:eu-west-1:*:table/J"
    assert cli_main(["cloudformation", "--ttl-days", "0"]) == 2
    assert "--ttl-days" in capsys.readouterr().err
