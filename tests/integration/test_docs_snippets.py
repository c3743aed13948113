"""The documentation stays true: its Python examples run against DynamoDB Local, and Sphinx builds it without warnings.

Rules the guides follow (docs/README-style notes live here, where they are enforced):

* Every fenced ```python block of the documents in :data:`RUNNABLE` runs, in document order, in one namespace per
  document (a later block may use the names of an earlier one), against the session's DynamoDB Local. The snippets
  read the endpoint from ``AWS_ENDPOINT_URL_DYNAMODB`` and the table names from ``JOB_TABLE``,
  ``REGION_REQUEST_TABLE``, ``ENDPOINT_TABLE``, ``FEATURE_TABLE`` and ``OUTSTANDING_IMAGE_REQUEST_TABLE`` (what a
  deployment sets); the test sets them to
  the session's endpoint and to table names unique to the test, and deletes those tables afterwards.
* A ```text block that directly follows a ```python block (nothing but blank lines between) is that block's printed
  output; it must match what the block prints (``...`` matches anything, as in doctest's ELLIPSIS).
* The pytest example of the testing guide is run by pytest itself, against the same DynamoDB Local.
* Every ``$ model-runner-db ...`` line of a ```console block of docs/cli.md runs, in order, against a DynamoDB Local
  of its own (so that the default table names are safe to use), except ``local`` commands (they would start a server
  on the reader's port 8000). The lines after it, up to the next ``$`` line, are its output (stdout and stderr), with
  the endpoint shown as ``http://127.0.0.1:8000``; ``...`` matches anything.
"""

from __future__ import annotations

import ast
import contextlib
import doctest
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

from model_runner.database import TableNames

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

#: Documents whose Python blocks must run as written.
RUNNABLE = (
    "README.md",
    "docs/quickstart.md",
    "docs/configuration.md",
    "docs/workflow.md",
    "docs/table-design.md",
    "docs/migrating.md",
    "docs/scheduler.md",
)

#: Environment variables of the table names, as a deployment sets them.
TABLE_ENV = {
    "job": "JOB_TABLE",
    "region": "REGION_REQUEST_TABLE",
    "endpoint": "ENDPOINT_TABLE",
    "feature": "FEATURE_TABLE",
    "requested": "OUTSTANDING_IMAGE_REQUEST_TABLE",
}

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")


@dataclass
class Block:
    """One fenced code block of a Markdown document.

    :param language: str = the first word of the info string (``python``, ``text``, ``console`` ...)
    :param code: str = the block's content
    :param line: int = the line of the opening fence, 1-based
    :param end: int = the line of the closing fence, 1-based
    """

    language: str
    code: str
    line: int
    end: int


def fenced_blocks(text: str) -> list[Block]:
    """Return the fenced code blocks of a Markdown text, in order.

    :param text: str = the Markdown text
    :return: List[Block] = the blocks
    """
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence = opening["fence"]
        info = opening["info"].strip()
        body: list[str] = []
        start = index
        index += 1
        while index < len(lines) and not re.match(rf"^ {{0,3}}{fence[0]}{{{len(fence)},}}\s*$", lines[index]):
            body.append(lines[index])
            index += 1
        language = info.split()[0] if info else ""
        blocks.append(Block(language.lower(), "\n".join(body) + "\n", start + 1, index + 1))
        index += 1
    return blocks


@dataclass
class Snippet:
    """A Python block and the output it must print (None when the document shows none).

    :param code: str = the Python code
    :param line: int = its line in the document
    :param expected: Optional[str] = the ```text block that follows it
    """

    code: str
    line: int
    expected: str | None


def python_snippets(text: str) -> list[Snippet]:
    """Return the Python blocks of a Markdown text with their expected output.

    :param text: str = the Markdown text
    :return: List[Snippet] = the snippets, in document order
    """
    lines = text.splitlines()
    blocks = fenced_blocks(text)
    snippets: list[Snippet] = []
    for position, block in enumerate(blocks):
        if block.language != "python":
            continue
        expected = None
        following = blocks[position + 1] if position + 1 < len(blocks) else None
        if following is not None and following.language == "text":
            between = lines[block.end : following.line - 1]
            if all(not line.strip() for line in between):
                expected = following.code
        snippets.append(Snippet(block.code, block.line, expected))
    return snippets


def output_matches(expected: str, printed: str) -> bool:
    """Compare printed output with a document's, line ends ignored, ``...`` matching anything.

    :param expected: str = the output the document shows
    :param printed: str = what the snippet printed
    :return: bool = True when they match
    """

    def tidy(text: str) -> str:
        return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()) + "\n"

    return doctest.OutputChecker().check_output(tidy(expected), tidy(printed), doctest.ELLIPSIS)


@pytest.fixture
def docs_env(
    dynamodb_local_endpoint: str, ddb_tables: TableNames, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> TableNames:
    """What a deployment gives the snippets: the endpoint and the names of the existing tables, in the environment.

    :return: TableNames = the table names the snippets see through the environment (deleted after the test)
    """
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_local_endpoint)
    for role, variable in TABLE_ENV.items():
        monkeypatch.setenv(variable, ddb_tables.as_dict()[role])
    monkeypatch.chdir(tmp_path)
    return ddb_tables


@pytest.mark.parametrize("document", RUNNABLE)
def test_python_examples_run_and_print_what_the_document_shows(document: str, docs_env: TableNames) -> None:
    path = ROOT / document
    snippets = python_snippets(path.read_text(encoding="utf-8"))
    assert snippets, f"{document} has no ```python block: the guide lost its example, or its fences changed"
    namespace: dict[str, object] = {"__name__": f"docs_snippet_{path.stem}"}
    for snippet in snippets:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            try:
                exec(compile(snippet.code, f"{document}:{snippet.line}", "exec"), namespace)
            except Exception as err:
                pytest.fail(f"{document}, block at line {snippet.line} raised {type(err).__name__}: {err}")
        if snippet.expected is not None:
            assert output_matches(snippet.expected, printed.getvalue()), (
                f"{document}, block at line {snippet.line} printed:\n{printed.getvalue()}\n"
                f"but the document shows:\n{snippet.expected}"
            )


def test_snippet_extraction_pairs_code_with_output_and_keeps_order() -> None:
    text = (
        "# Title\n\n```python\nx = 1\nprint(x)\n```\n\n```text\n1\n```\n\n"
        "````python\nprint('```')\n````\n\nSome prose.\n\n```text\nnot an output\n```\n"
    )
    snippets = python_snippets(text)
    assert [(s.line, s.expected) for s in snippets] == [(3, "1\n"), (12, None)]
    assert snippets[1].code == "print('```')\n"
    assert output_matches("took ... ms\nok\n", "took 12 ms  \nok")
    assert not output_matches("ok\n", "not ok\n")


# -- the testing guide's pytest example, run by pytest ----------------------------------------------------------------


def test_testing_guide_example_passes_under_pytest(dynamodb_local_endpoint: str, tmp_path: Path) -> None:
    blocks = [b for b in fenced_blocks((DOCS / "testing.md").read_text(encoding="utf-8")) if b.language == "python"]
    assert blocks, "docs/testing.md has no ```python block"
    (tmp_path / "test_from_guide.py").write_text("\n\n".join(b.code for b in blocks), encoding="utf-8")
    env = {**os.environ, "MODEL_RUNNER_TEST_ENDPOINT": dynamodb_local_endpoint}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_from_guide.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b[1-9]\d* passed\b", result.stdout), result.stdout


# -- the command line guide, run command by command ---------------------------------------------------------------

#: The endpoint the CLI guide shows.
SHOWN_ENDPOINT = "http://127.0.0.1:8000"


@dataclass
class Command:
    """A ``$ model-runner-db`` line of a console block and the output shown after it.

    :param line: int = its line in the document
    :param args: List[str] = the arguments after ``model-runner-db``
    :param expected: str = the lines shown after it, up to the next ``$`` line or the end of the block
    """

    line: int
    args: list[str]
    expected: str


def cli_commands(text: str) -> list[Command]:
    """Return the ``model-runner-db`` commands of the console blocks of a Markdown text, in order.

    :param text: str = the Markdown text
    :return: List[Command] = the commands with their shown output
    """
    commands: list[Command] = []
    for block in fenced_blocks(text):
        if block.language != "console":
            continue
        current: Command | None = None
        for offset, line in enumerate(block.code.splitlines(), start=1):
            if line.startswith("$ "):
                current = None
                words = shlex.split(line[2:], comments=True)
                if words and words[0] == "model-runner-db":
                    current = Command(block.line + offset, words[1:], "")
                    commands.append(current)
            elif current is not None:
                current.expected += line + "\n"
    return commands


@pytest.fixture
def own_dynamodb_local(aws_test_env: None) -> Iterator[str]:
    """A DynamoDB Local of this test alone, in memory, where the default table names are free.

    :return: Iterator[str] = its endpoint URL
    """
    from model_runner.testing.dynamodb_local import DynamoDBLocal, ensure_emulator

    with DynamoDBLocal(emulator_dir=ensure_emulator(), in_memory=True) as server:
        yield server.endpoint_url


def test_cli_guide_commands_print_what_the_guide_shows(own_dynamodb_local: str, tmp_path: Path) -> None:
    commands = [c for c in cli_commands((DOCS / "cli.md").read_text(encoding="utf-8")) if c.args[:1] != ["local"]]
    assert len(commands) >= 10, "docs/cli.md lost its examples"
    env = {name: value for name, value in os.environ.items() if name not in TABLE_ENV.values()}
    env.update({"AWS_ENDPOINT_URL_DYNAMODB": own_dynamodb_local, "COLUMNS": "120", "NO_COLOR": "1"})
    for command in commands:
        _run_cli_command(command, env, own_dynamodb_local, tmp_path, "docs/cli.md")


def _run_cli_command(command: Command, env: dict[str, str], endpoint: str, cwd: Path, document: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "model_runner.database", *command.args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        check=False,
    )
    printed = result.stdout.replace(endpoint, SHOWN_ENDPOINT)
    assert output_matches(command.expected, printed), (
        f"{document}:{command.line}: model-runner-db {shlex.join(command.args)} (exit {result.returncode}) "
        f"printed:\n{printed}\nbut the guide shows:\n{command.expected}"
    )
    assert not re.search(r"[ \t]$", result.stdout, re.MULTILINE), f"{document}:{command.line}: trailing spaces"


def test_quickstart_runs_as_written_commands_and_python_in_order(
    own_dynamodb_local: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quickstart's steps, in order, on a DynamoDB Local of their own: its console commands (but ``local``) print
    what it shows, its Python example runs twice as the page says, and the ``status``/``regions`` blocks show
    what the commands print afterwards."""
    document = "docs/quickstart.md"
    text = (ROOT / document).read_text(encoding="utf-8")
    for variable in TABLE_ENV.values():
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", own_dynamodb_local)
    monkeypatch.chdir(tmp_path)
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    ran_python = ran_commands = 0
    for block in fenced_blocks(text):
        if block.language == "python":
            for _ in range(2):  # "Run it a second time: it prints the same."
                printed = io.StringIO()
                with contextlib.redirect_stdout(printed):
                    exec(compile(block.code, f"{document}:{block.line}", "exec"), {"__name__": "quickstart"})
            ran_python += 1
        elif block.language == "console":
            for command in cli_commands("```console\n" + block.code + "```\n"):
                if command.args[:1] == ["local"]:
                    continue
                command.line += block.line - 1
                _run_cli_command(command, env, own_dynamodb_local, tmp_path, document)
                ran_commands += 1
    assert ran_python == 1 and ran_commands >= 3, "the quickstart lost its steps"


def test_cli_command_extraction_keeps_outputs_and_skips_other_programs() -> None:
    text = (
        "```console\n$ model-runner-db status x\nline 1\nline 2\n$ export A=1\nignored\n"
        "$ model-runner-db endpoints --json  # a comment\n```\n"
    )
    commands = cli_commands(text)
    assert [(c.line, c.args, c.expected) for c in commands] == [
        (2, ["status", "x"], "line 1\nline 2\n"),
        (7, ["endpoints", "--json"], ""),
    ]


# -- docstrings ------------------------------------------------------------------------------------------------------


def _undocumented(path: Path) -> list[str]:
    """Return the public classes and functions of a module without a docstring, or whose docstring leaves out a
    parameter (``:param name:``), in the seed's style.

    Nested ``Meta`` classes (PynamoDB settings) and pytest fixtures' parameters (other fixtures) are exempt.

    :param path: Path = the module
    :return: List[str] = one line per problem
    """
    problems: list[str] = []
    where = path.relative_to(ROOT)

    def visit(node: ast.AST, owner: str) -> None:
        for child in getattr(node, "body", []):
            if isinstance(child, ast.ClassDef) and not child.name.startswith("_"):
                if not ast.get_docstring(child) and not (owner and child.name == "Meta"):
                    problems.append(f"{where}:{child.lineno} class {owner}{child.name} has no docstring")
                visit(child, f"{owner}{child.name}.")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and not child.name.startswith("_"):
                doc = ast.get_docstring(child)
                if not doc:
                    problems.append(f"{where}:{child.lineno} {owner}{child.name} has no docstring")
                    continue
                if any("fixture" in ast.unparse(decorator) for decorator in child.decorator_list):
                    continue
                arguments = [*child.args.posonlyargs, *child.args.args, *child.args.kwonlyargs]
                names = [a.arg for a in arguments if a.arg not in ("self", "cls")]
                names += [a.arg for a in (child.args.vararg, child.args.kwarg) if a is not None]
                missing = [name for name in names if f":param {name}:" not in doc]
                if missing:
                    problems.append(f"{where}:{child.lineno} {owner}{child.name} does not describe {missing}")

    visit(ast.parse(path.read_text(encoding="utf-8")), "")
    return problems


def test_every_public_class_and_function_has_a_docstring_naming_its_parameters() -> None:
    modules = sorted((ROOT / "model_runner").rglob("*.py"))
    assert len(modules) > 20
    problems = [problem for module in modules for problem in _undocumented(module)]
    assert not problems, "undocumented public API (see the seed's docstring style):\n" + "\n".join(problems)


# -- the Sphinx build (make docs) -------------------------------------------------------------------------------------


class _Anchors(HTMLParser):
    """Collects the ids of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids.update(value for name, value in attrs if name == "id" and value)


@pytest.mark.docs
def test_sphinx_builds_the_docs_without_warnings_and_documents_the_api(tmp_path: Path) -> None:
    # A copy of docs/ beside a link to the package: autoapi writes its pages into the source folder, so building
    # docs/ itself would race with a concurrent `make docs`.
    source = tmp_path / "docs"
    shutil.copytree(DOCS, source, ignore=shutil.ignore_patterns("_build", "autoapi"))
    (tmp_path / "model_runner").symlink_to(ROOT / "model_runner", target_is_directory=True)
    out = tmp_path / "html"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(source), str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"sphinx-build -W failed:\n{result.stdout}\n{result.stderr}"

    import model_runner.database as database

    page = out / "autoapi" / "model_runner" / "database" / "index.html"
    parser = _Anchors()
    parser.feed(page.read_text(encoding="utf-8"))
    missing = [name for name in database.__all__ if f"model_runner.database.{name}" not in parser.ids]
    assert not missing, f"the model_runner.database page does not document {missing}"
    for method in ("JobTable.start_image_request", "RegionRequestTable.add_tile", "FeatureTable.add_features"):
        assert f"model_runner.database.{method}" in parser.ids, f"no entry for {method}"
    for guide in ("quickstart", "configuration", "workflow", "table-design", "guarantees", "migrating", "cli"):
        assert (out / f"{guide}.html").is_file(), f"guide {guide} was not built"
    # long commands in code blocks wrap (or scroll) instead of being cut off by the theme
    assert "_static/custom.css" in (out / "cli.html").read_text(encoding="utf-8")
    css = (out / "_static" / "custom.css").read_text(encoding="utf-8")
    assert "white-space: pre-wrap" in css and "overflow-x: auto" in css
