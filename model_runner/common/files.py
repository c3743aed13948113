"""Write an output file safely: checked before any work, written whole or not at all, into the file the user named.

:func:`check_output_path` says, before a long command starts, whether its output file can be written;
:func:`atomic_output` writes through a temporary file in the directory that really holds the target and renames it
over the target at the end. The target keeps its permission bits (a 0600 file stays 0600; a new file gets the
umask's mode, as ``open()`` would give it), and a symbolic link keeps pointing where it did: the file it points to
receives the content. Every error names the path the user gave and what is wrong with it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["OutputFileError", "atomic_output", "check_output_path"]


class OutputFileError(OSError):
    """An output file cannot be written; the message names the path as the user gave it and the problem.

    :param path: str = the path as given
    :param problem: str = what is wrong, e.g. "is a directory"
    """

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"cannot write {path!r}: {problem}")
        self.path = path
        self.problem = problem

    def __str__(self) -> str:
        """Return the message: ``cannot write 'PATH': PROBLEM``."""
        return str(self.args[0])


def _problem(err: OSError) -> str:
    """The reason of an OSError as people read it ("permission denied"), without the paths botocore/os add."""
    reason = err.strerror or type(err).__name__
    return reason[:1].lower() + reason[1:]


def _real_target(path: str | os.PathLike[str]) -> tuple[str, Path]:
    """Resolve what the user named to the file that will receive the content.

    :param path: Union[str, PathLike] = the path as given
    :return: Tuple[str, Path] = the path as given (for messages) and the real target (symbolic links followed)
    :raises OutputFileError: when the path is empty, a directory, or its directory does not exist
    """
    given = os.fspath(path)
    if not given:
        raise OutputFileError(given, "the file name is empty")
    if given.endswith(os.sep) or Path(given).name in ("", ".", ".."):
        raise OutputFileError(given, "is a directory, not a file name")
    real = Path(os.path.realpath(given))
    if real.is_dir():
        raise OutputFileError(given, "is a directory")
    directory = real.parent
    if not directory.exists():
        raise OutputFileError(given, f"directory {str(Path(given).parent)!r} does not exist")
    if not directory.is_dir():
        raise OutputFileError(given, f"{str(Path(given).parent)!r} is not a directory")
    return given, real


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """Check that a file can be written there, without changing anything (before a long command starts).

    :param path: Union[str, PathLike] = the path as given
    :return: Path = the real target (symbolic links followed)
    :raises OutputFileError: naming the path and the problem (empty, a directory, no such directory, no permission)
    """
    given, real = _real_target(path)
    if not os.access(real.parent, os.W_OK | os.X_OK):
        raise OutputFileError(given, f"permission denied (cannot create files in {str(real.parent)!r})")
    if real.exists() and not real.is_file():
        raise OutputFileError(given, "is not a regular file")
    return real


def _mode_for(real: Path) -> int:
    """The permission bits the written file should have: the target's, else what ``open()`` gives a new file."""
    try:
        return stat.S_IMODE(real.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[IO[str]]:
    """Open a temporary file next to the real target; on success rename it over the target, else remove it.

    :param path: Union[str, PathLike] = the path as given (a symbolic link's target receives the content)
    :return: Iterator[IO[str]] = the open temporary file (UTF-8 text)
    :raises OutputFileError: when the file cannot be created or renamed, naming the path and the problem
    """
    given = os.fspath(path)
    real = check_output_path(given)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".tmp", dir=real.parent)
    except OSError as err:
        raise OutputFileError(given, _problem(err)) from err
    try:
        os.fchmod(handle, _mode_for(real))
        with os.fdopen(handle, "w", encoding="utf-8") as fp:
            yield fp
        try:
            os.replace(temporary, real)
        except OSError as err:
            raise OutputFileError(given, _problem(err)) from err
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
