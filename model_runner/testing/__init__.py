"""Test support: the DynamoDB Local harness (:mod:`.dynamodb_local`) and the pytest plugin (:mod:`.pytest_plugin`).

The names below are imported lazily, so that loading the pytest plugin, which imports this package, stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from model_runner.testing.dynamodb_local import (
        DynamoDBLocal,
        DynamoDBLocalError,
        LocalServerInfo,
        default_emulator_dir,
        ensure_emulator,
        fetch,
        free_port,
        start_detached,
        status_detached,
        stop_detached,
    )

__all__ = [
    "DynamoDBLocal",
    "DynamoDBLocalError",
    "LocalServerInfo",
    "default_emulator_dir",
    "ensure_emulator",
    "fetch",
    "free_port",
    "start_detached",
    "status_detached",
    "stop_detached",
]


def __getattr__(name: str) -> Any:
    """Import a public name from :mod:`model_runner.testing.dynamodb_local` on first use.

    :param name: str = the attribute asked for
    :return: Any = the attribute
    :raises AttributeError: when the name is not public here
    """
    if name in __all__:
        value = getattr(importlib.import_module("model_runner.testing.dynamodb_local"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
