"""A CloudFormation template of the tables, derived from the PynamoDB models.

Key schema and attribute definitions come from each model's ``_get_schema()``, the TTL attribute from
``_ttl_attribute()``, the default table names and their environment variables from ``TABLE_MODELS``: nothing here
names a key, so the deployed tables cannot drift from the code that reads and writes them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pynamodb.attributes import Attribute
from pynamodb.models import Model

from model_runner.database.tables import TABLE_MODELS

from .iam import ROLE_METHODS, policy_statements, statement_id

#: The billing modes of DynamoDB.
ON_DEMAND = "PAY_PER_REQUEST"
PROVISIONED = "PROVISIONED"

#: Template parameter holding the days items live (TTL), passed to the workers as ``expire_days``.
EXPIRE_DAYS_PARAMETER = "ExpireDays"
#: Template parameter holding an optional customer managed KMS key for server-side encryption.
KMS_KEY_PARAMETER = "KmsKeyArn"
_KMS_CONDITION = "UseCustomerManagedKey"

#: Tag keys written on every table.
TABLE_TAG = "model-runner:table"
EXPIRE_DAYS_TAG = "model-runner:expire-days"


@dataclass(frozen=True)
class TemplateOptions:
    """What the template deploys besides the models' schema.

    :param table_prefix: str = put before the default table names (the parameters' defaults)
    :param ttl_days: int = days items live before TTL removes them; the ExpireDays parameter's default
    :param pitr: bool = enable point-in-time recovery
    :param billing_mode: str = PAY_PER_REQUEST (on demand) or PROVISIONED
    :param read_capacity: int = read capacity units per table, for PROVISIONED
    :param write_capacity: int = write capacity units per table, for PROVISIONED
    :param deletion_protection: bool = enable deletion protection and retain the tables when the stack goes
    :param with_policies: bool = add one IAM managed policy per worker role, on these tables
    """

    table_prefix: str = ""
    ttl_days: int = 7
    pitr: bool = True
    billing_mode: str = ON_DEMAND
    read_capacity: int = 5
    write_capacity: int = 5
    deletion_protection: bool = False
    with_policies: bool = False

    def __post_init__(self) -> None:
        if self.ttl_days < 1:
            raise ValueError(f"ttl_days must be at least 1, not {self.ttl_days}")
        if self.billing_mode not in (ON_DEMAND, PROVISIONED):
            raise ValueError(f"billing_mode must be {ON_DEMAND} or {PROVISIONED}, not {self.billing_mode!r}")
        if self.billing_mode == PROVISIONED and min(self.read_capacity, self.write_capacity) < 1:
            raise ValueError("read_capacity and write_capacity must be at least 1")


def _camel(role: str) -> str:
    return "".join(part.capitalize() for part in role.split("-"))


def name_parameter(table: str) -> str:
    """Return the template parameter holding a table's name (``JobTableName``).

    :param table: str = table short name of ``TABLE_MODELS``
    :return: str = the parameter's logical name
    """
    return f"{statement_id(table)}Name"


def policy_logical_id(role: str) -> str:
    """Return the logical id of a role's managed policy (``ImageWorkerPolicy``).

    :param role: str = a role of ``ROLE_METHODS``
    :return: str = the logical id
    """
    return f"{_camel(role)}Policy"


def table_properties(model: type[Model]) -> dict[str, Any]:
    """Return what a model fixes in its table: key schema, attribute definitions and TTL specification.

    :param model: Type[Model] = a table model, bound or not
    :return: Dict[str, Any] = KeySchema, AttributeDefinitions and, when the model has a TTL attribute,
        TimeToLiveSpecification, in CloudFormation's (and DynamoDB's) names
    :raises ValueError: when the model declares secondary indexes (their permissions and projections are not
        generated yet)
    """
    schema = model._get_schema()
    if schema.get("global_secondary_indexes") or schema.get("local_secondary_indexes"):
        raise ValueError(f"{model.__name__} declares secondary indexes, which this template does not generate yet")
    properties: dict[str, Any] = {
        "AttributeDefinitions": [
            {"AttributeName": d["AttributeName"], "AttributeType": d["AttributeType"]}
            for d in schema["attribute_definitions"]
        ],
        "KeySchema": [{"AttributeName": k["AttributeName"], "KeyType": k["KeyType"]} for k in schema["key_schema"]],
    }
    ttl_attribute: Callable[[], Attribute[Any] | None] = model._ttl_attribute  # PynamoDB leaves it untyped
    ttl = ttl_attribute()
    if ttl is not None:
        properties["TimeToLiveSpecification"] = {"AttributeName": ttl.attr_name, "Enabled": True}
    return properties


def _default_name(table: str, model: type[Model], prefix: str, names: Mapping[str, str]) -> str:
    if names.get(table):
        return names[table]
    bound_name = getattr(getattr(model, "Meta", None), "table_name", None)
    if bound_name:
        return str(bound_name)
    return f"{prefix}{TABLE_MODELS[table][2]}"


def _table_resource(table: str, model: type[Model], options: TemplateOptions) -> dict[str, Any]:
    properties: dict[str, Any] = {"TableName": {"Ref": name_parameter(table)}}
    properties.update(table_properties(model))
    properties["BillingMode"] = options.billing_mode
    if options.billing_mode == PROVISIONED:
        properties["ProvisionedThroughput"] = {
            "ReadCapacityUnits": options.read_capacity,
            "WriteCapacityUnits": options.write_capacity,
        }
    properties["PointInTimeRecoverySpecification"] = {"PointInTimeRecoveryEnabled": options.pitr}
    properties["SSESpecification"] = {
        "SSEEnabled": True,
        "SSEType": "KMS",
        "KMSMasterKeyId": {"Fn::If": [_KMS_CONDITION, {"Ref": KMS_KEY_PARAMETER}, {"Ref": "AWS::NoValue"}]},
    }
    properties["DeletionProtectionEnabled"] = options.deletion_protection
    properties["Tags"] = [
        {"Key": TABLE_TAG, "Value": table},
        {"Key": EXPIRE_DAYS_TAG, "Value": {"Ref": EXPIRE_DAYS_PARAMETER}},
    ]
    policy = "Retain" if options.deletion_protection else "Delete"
    return {
        "Type": "AWS::DynamoDB::Table",
        "DeletionPolicy": policy,
        "UpdateReplacePolicy": policy,
        "Properties": properties,
    }


def build_template(
    options: TemplateOptions | None = None,
    models: Mapping[str, type[Model]] | None = None,
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Build the CloudFormation template of the tables.

    :param options: Optional[TemplateOptions] = what to deploy besides the schema; the defaults when None
    :param models: Optional[Mapping[str, Type[Model]]] = table short name (``job``, ``region``, ``endpoint``,
        ``feature``) to its model, bound or not; ``TABLE_MODELS``' models when None. A bound model's table name becomes
        its parameter's default.
    :param names: Optional[Mapping[str, str]] = table short name to the default of its name parameter, before a
        bound model's name and ``table_prefix`` + the default name
    :return: Dict[str, Any] = the template, ready for :func:`render`
    :raises ValueError: for an unknown table short name, or a model with secondary indexes
    """
    options = options or TemplateOptions()
    chosen = dict(models) if models is not None else {table: spec[0] for table, spec in TABLE_MODELS.items()}
    unknown = sorted(set(chosen) - set(TABLE_MODELS))
    if unknown:
        raise ValueError(f"unknown table {', '.join(unknown)}: choose from {', '.join(TABLE_MODELS)}")
    parameters: dict[str, Any] = {}
    resources: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    for table, model in chosen.items():
        env_var = TABLE_MODELS[table][1]
        logical_id = statement_id(table)
        parameters[name_parameter(table)] = {
            "Type": "String",
            "Default": _default_name(table, model, options.table_prefix, names or {}),
            "MinLength": 3,
            "MaxLength": 255,
            "AllowedPattern": "[a-zA-Z0-9_.-]+",
            "Description": f"Name of the {table} table ({model.__name__}); workers read it from {env_var}",
        }
        resources[logical_id] = _table_resource(table, model, options)
        outputs[f"{logical_id}Name"] = {
            "Description": f"Set {env_var} of the workers to this",
            "Value": {"Ref": logical_id},
            "Export": {"Name": {"Fn::Sub": f"${{AWS::StackName}}-{logical_id}Name"}},
        }
        outputs[f"{logical_id}Arn"] = {
            "Description": f"ARN of the {table} table, for IAM policies",
            "Value": {"Fn::GetAtt": [logical_id, "Arn"]},
            "Export": {"Name": {"Fn::Sub": f"${{AWS::StackName}}-{logical_id}Arn"}},
        }
    parameters[EXPIRE_DAYS_PARAMETER] = {
        "Type": "Number",
        "Default": options.ttl_days,
        "MinValue": 1,
        "Description": "Days items live before TTL removes them: give the same value to every repository "
        "(expire_days), so that a feature never expires before its job",
    }
    parameters[KMS_KEY_PARAMETER] = {
        "Type": "String",
        "Default": "",
        "Description": "ARN of a customer managed KMS key for server-side encryption; empty for the AWS managed key",
    }
    outputs[EXPIRE_DAYS_PARAMETER] = {
        "Description": "Days items live (TTL): pass it to the repositories as expire_days",
        "Value": {"Ref": EXPIRE_DAYS_PARAMETER},
        "Export": {"Name": {"Fn::Sub": f"${{AWS::StackName}}-{EXPIRE_DAYS_PARAMETER}"}},
    }
    if options.with_policies:
        arns = {table: {"Fn::GetAtt": [statement_id(table), "Arn"]} for table in chosen}
        for role in ROLE_METHODS:
            if not set(ROLE_METHODS[role]) <= set(chosen):
                continue
            logical_id = policy_logical_id(role)
            resources[logical_id] = {
                "Type": "AWS::IAM::ManagedPolicy",
                "Properties": {
                    "Description": f"Least-privilege DynamoDB access of the model runner's {role}",
                    "PolicyDocument": {"Version": "2012-10-17", "Statement": policy_statements(role, arns)},
                },
            }
            outputs[f"{logical_id}Arn"] = {
                "Description": f"Attach to the {role} role",
                "Value": {"Ref": logical_id},
                "Export": {"Name": {"Fn::Sub": f"${{AWS::StackName}}-{logical_id}Arn"}},
            }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "DynamoDB tables of the model runner, generated by `model-runner-db cloudformation` from the "
        f"PynamoDB models. Items expire after the ExpireDays parameter (default {options.ttl_days} days).",
        "Parameters": parameters,
        "Conditions": {_KMS_CONDITION: {"Fn::Not": [{"Fn::Equals": [{"Ref": KMS_KEY_PARAMETER}, ""]}]}},
        "Resources": resources,
        "Outputs": outputs,
    }


def yaml_available() -> bool:
    """Tell whether PyYAML is installed (YAML output needs it; JSON does not).

    :return: bool = True when ``import yaml`` works
    """
    try:
        import yaml  # noqa: F401
    except ImportError:
        return False
    return True


def render(template: Mapping[str, Any], fmt: str = "yaml") -> str:
    """Render a template as YAML (with PyYAML) or JSON. CloudFormation reads both; the YAML uses the long form of the
    intrinsic functions (``Ref:``, ``Fn::GetAtt:``), so it needs no custom tags.

    :param template: Mapping[str, Any] = the template
    :param fmt: str = yaml or json
    :return: str = the text, ending with a newline
    :raises ValueError: for another format
    :raises ImportError: for yaml when PyYAML is not installed
    """
    if fmt == "json":
        return json.dumps(template, indent=2) + "\n"
    if fmt != "yaml":
        raise ValueError(f"format must be yaml or json, not {fmt!r}")
    import yaml

    class _NoAliases(yaml.SafeDumper):
        """CloudFormation rejects YAML aliases: write a value shared by two places twice."""

        def ignore_aliases(self, data: Any) -> bool:
            return True

    return str(yaml.dump(dict(template), Dumper=_NoAliases, sort_keys=False, default_flow_style=False, width=120))
