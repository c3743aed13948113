"""model_runner.infra: deployment artefacts derived from the models, so that they cannot drift from the code.

* :mod:`model_runner.infra.cloudformation`: a CloudFormation template of the tables (keys, TTL, billing,
  point-in-time recovery, encryption), from the PynamoDB models.
* :mod:`model_runner.infra.iam`: least-privilege IAM policies per worker role, from the DynamoDB actions the
  repositories' code paths send (recorded on DynamoDB Local and checked by the tests).
"""

from .cloudformation import TemplateOptions, build_template, render, table_properties
from .iam import ROLE_METHODS, ActionRecorder, policy_document, role_actions, roles

__all__ = [
    "ROLE_METHODS",
    "ActionRecorder",
    "TemplateOptions",
    "build_template",
    "policy_document",
    "render",
    "role_actions",
    "roles",
    "table_properties",
]
