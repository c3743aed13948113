"""The ``model-runner-db`` command line (see :mod:`model_runner.cli.main`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from model_runner.cli.main import main

__all__ = ["main"]


def __getattr__(name: str) -> Any:
    """Import :func:`main` on first use, so that importing the package stays cheap.

    :param name: str = the attribute asked for
    :return: Any = the attribute
    :raises AttributeError: for any other name
    """
    if name == "main":
        from model_runner.cli.main import main

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
