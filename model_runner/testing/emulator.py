"""Fetching DynamoDB Local: where the emulator lives, downloading it with npm, and extracting it.

DynamoDB Local (a Java program) ships in the npm package ``amplify-dynamodb-simulator``, in its folder
``emulator/``: :func:`fetch` downloads that package with ``npm pack`` and keeps only the emulator. One directory
serves every user of it (``make``, the test harness, ``model-runner-db local start`` and ``demo``):
``$DYNAMODB_LOCAL_DIR`` when set, else ``$XDG_CACHE_HOME/model-runner-db/dynamodb-local`` (``~/.cache/...``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path, PurePosixPath

#: The npm package that carries DynamoDB Local in its folder ``emulator/``.
NPM_PACKAGE = "amplify-dynamodb-simulator"
#: The pinned version of :data:`NPM_PACKAGE`; it carries DynamoDB Local 1.25.x.
DEFAULT_SIMULATOR_VERSION = "2.9.30"
#: The environment variable naming the emulator directory, read at call time.
EMULATOR_DIR_ENV = "DYNAMODB_LOCAL_DIR"
JAR_NAME = "DynamoDBLocal.jar"
LIB_DIR_NAME = "DynamoDBLocal_lib"

_ARCHIVE_PREFIX = PurePosixPath("package/emulator")
_TAIL_LINES = 30


class DynamoDBLocalError(Exception):
    """DynamoDB Local could not be fetched, started, reached or stopped; the message says why."""


def _last_lines(text: str, count: int = _TAIL_LINES) -> str:
    lines = text.strip().splitlines()[-count:]
    return "\n".join(lines) if lines else "(no output)"


def _progress(message: str) -> None:
    print(f"[dynamodb-local] {message}", file=sys.stderr, flush=True)


def default_emulator_dir() -> Path:
    """Return where the emulator lives: ``$DYNAMODB_LOCAL_DIR``, else ``$XDG_CACHE_HOME/model-runner-db/dynamodb-local``
    (``~/.cache/model-runner-db/dynamodb-local``): the same directory for ``make`` and for ``model-runner-db``.

    :return: Path = the emulator directory (it may not exist yet)
    """
    configured = os.environ.get(EMULATOR_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "model-runner-db" / "dynamodb-local"


def _member_target(name: str) -> PurePosixPath | None:
    """Return a member's path relative to ``package/emulator/``, or None when it lies elsewhere or escapes."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name:
        return None
    parts = tuple(part for part in path.parts if part not in ("", "."))
    prefix = _ARCHIVE_PREFIX.parts
    if len(parts) <= len(prefix) or parts[: len(prefix)] != prefix:
        return None
    return PurePosixPath(*parts[len(prefix) :])


def extract_emulator(archive: Path, dest: Path) -> Path:
    """Extract ``package/emulator/*`` of an npm tarball into a new directory.

    Only regular files and directories under ``package/emulator/`` are written; other members, links, devices and
    paths that are absolute or contain ``..`` are skipped.

    :param archive: Path = the ``.tgz`` written by ``npm pack``
    :param dest: Path = the directory to create and fill; it must not exist
    :return: Path = dest
    :raises DynamoDBLocalError: when the archive cannot be read or holds no ``DynamoDBLocal.jar``
    """
    dest.mkdir(parents=True)
    root = dest.resolve()
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                relative = _member_target(member.name)
                if relative is None or not (member.isfile() or member.isdir()):
                    continue
                target = root.joinpath(*relative.parts)
                if not target.resolve().is_relative_to(root):
                    continue
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                if source is None:
                    continue
                with source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
                target.chmod((member.mode & 0o755) | 0o600)
    except (tarfile.TarError, OSError) as exc:
        raise DynamoDBLocalError(f"cannot extract the emulator from {archive}: {exc}") from exc
    if not (dest / JAR_NAME).is_file():
        raise DynamoDBLocalError(f"{archive} holds no {_ARCHIVE_PREFIX}/{JAR_NAME}")
    return dest


def fetch(dest: Path | None = None, version: str = DEFAULT_SIMULATOR_VERSION) -> Path:
    """Download DynamoDB Local with ``npm pack`` unless ``dest`` already holds it.

    The emulator is extracted into a temporary sibling of ``dest`` and renamed into place, so ``dest`` is either
    absent or complete, also when several processes fetch at once.

    :param dest: Path = where the emulator goes, :func:`default_emulator_dir` when None
    :param version: str = the version of the npm package ``amplify-dynamodb-simulator``
    :return: Path = the emulator directory, holding ``DynamoDBLocal.jar`` and ``DynamoDBLocal_lib/``
    :raises DynamoDBLocalError: when npm is missing, ``npm pack`` fails or the package holds no emulator
    """
    dest = (dest if dest is not None else default_emulator_dir()).expanduser().absolute()
    if (dest / JAR_NAME).is_file():
        return dest
    npm = shutil.which("npm")
    if npm is None:
        raise DynamoDBLocalError(
            f"npm is not on PATH: install Node.js and npm (e.g. `apt-get install npm`) to fetch DynamoDB Local, "
            f"or put {JAR_NAME} and {LIB_DIR_NAME}/ into {dest} yourself"
        )
    package = f"{NPM_PACKAGE}@{version}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}-fetch-", dir=dest.parent) as work:
        work_dir = Path(work)
        pack_dir = work_dir / "pack"
        pack_dir.mkdir()
        _progress(f"downloading {package} with npm pack ...")
        started = time.monotonic()
        try:
            result = subprocess.run(
                [npm, "pack", package, "--silent"],
                cwd=pack_dir,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DynamoDBLocalError(f"npm pack {package} failed: {exc}") from exc
        if result.returncode != 0:
            raise DynamoDBLocalError(
                f"npm pack {package} failed with exit code {result.returncode}: "
                f"{_last_lines(result.stderr or result.stdout)}"
            )
        archives = sorted(pack_dir.glob("*.tgz"))
        if len(archives) != 1:
            raise DynamoDBLocalError(f"npm pack {package} left {len(archives)} archives in {pack_dir}, expected 1")
        _progress(
            f"downloaded {archives[0].name} ({archives[0].stat().st_size / 1e6:.0f} MB) in "
            f"{time.monotonic() - started:.1f}s; extracting the emulator ..."
        )
        staging = extract_emulator(archives[0], work_dir / "emulator")
        if dest.exists() and not (dest / JAR_NAME).is_file():
            # an empty or partial directory left by hand: move it aside, it goes away with the temporary directory
            dest.rename(work_dir / "previous")
        try:
            staging.rename(dest)
        except OSError as exc:
            if (dest / JAR_NAME).is_file():  # another process fetched it meanwhile
                return dest
            raise DynamoDBLocalError(f"cannot move the emulator into {dest}: {exc}") from exc
    _progress(f"DynamoDB Local is in {dest}")
    return dest


def ensure_emulator(dest: Path | None = None) -> Path:
    """Return the emulator directory, fetching DynamoDB Local first when it is missing.

    :param dest: Path = the emulator directory, :func:`default_emulator_dir` when None
    :return: Path = the emulator directory, holding ``DynamoDBLocal.jar``
    :raises DynamoDBLocalError: when it is missing and cannot be fetched
    """
    dest = dest if dest is not None else default_emulator_dir()
    if (dest / JAR_NAME).is_file():
        return dest
    return fetch(dest)
