"""Sphinx configuration: the guides (Markdown, MyST) and the API reference of model_runner (sphinx-autoapi).

Build with ``make docs`` (``sphinx-build -W --keep-going -b html docs docs/_build/html``): warnings are errors.
autoapi reads the sources without importing them, so building the docs needs no AWS access and no DynamoDB.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.domains.python import PythonDomain
from sphinx.environment import BuildEnvironment
from sphinx.util import logging

_LOGGER = logging.getLogger(__name__)
#: The folder that holds the package ``model_runner`` (autoapi_dirs' parent).
_SOURCE_ROOT = Path(__file__).resolve().parent.parent

project = "model-runner-database"
author = "model_runner maintainers"
copyright = "model_runner maintainers"
release = "0.1.0"

extensions = [
    "myst_parser",
    "autoapi.extension",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "autoapi/_templates", "Thumbs.db", ".DS_Store"]

# -- MyST: fenced code blocks, tables, header anchors for links like guarantees.md#job-table ----------------------
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# -- API reference: model_runner parsed by sphinx-autoapi into docs/autoapi (git-ignored) --------------------------
autoapi_type = "python"
autoapi_dirs = ["../model_runner"]
autoapi_root = "autoapi"
autoapi_keep_files = False
autoapi_add_toctree_entry = False  # index.md places the reference in its own toctree
autoapi_member_order = "bysource"
autoapi_python_class_content = "class"
autoapi_options = [
    "members",
    "undoc-members",
    "show-inheritance",
    "show-module-summary",
    "imported-members",
]
autoapi_ignore = ["*/__main__.py"]

# -- HTML ----------------------------------------------------------------------------------------------------------
html_theme = "alabaster"
html_title = "model_runner.database"
# Wide enough for the command line's 120-column tables; _static/custom.css makes code blocks wrap rather than cut off
html_theme_options = {"page_width": "1180px", "body_max_width": "none"}
html_static_path = ["_static"]
html_css_files = ["custom.css"]


# -- One target per name ---------------------------------------------------------------------------------------------
# With "imported-members", model_runner.database documents JobTable both as model_runner.database.JobTable (the
# package page, which reads like the classic API page) and as model_runner.database.job_table.JobTable. A short
# reference such as ``:raises StartImageException:`` then finds two targets, and -W turns that into an error. Marking
# the package's re-exports as aliases lets Sphinx pick the defining module's entry, and fully qualified references to
# either name still resolve.


def _mark_reexports_as_aliases(app: Sphinx, env: BuildEnvironment) -> list[str]:
    """Mark objects documented again on their package's page as aliases of the defining module's object.

    :param app: Sphinx = the application
    :param env: BuildEnvironment = the environment, after all documents were read
    :return: List[str] = documents to write again: none
    """
    domain = env.get_domain("py")
    assert isinstance(domain, PythonDomain)
    objects = domain.objects
    modules = [name for name, entry in objects.items() if entry.objtype == "module" and "." in name]
    for module in modules:
        package = module.rsplit(".", 1)[0]
        for name in [name for name in objects if name.startswith(module + ".")]:
            alias = f"{package}.{name[len(module) + 1 :]}"
            entry = objects.get(alias)
            if entry is not None and not entry.aliased and entry.objtype == objects[name].objtype:
                objects[alias] = entry._replace(aliased=True)
    _mark_sibling_reexports(objects, modules)
    return []


def _defines(module: str, name: str) -> bool:
    """Tell whether a module's source defines a top-level name (class, function or assignment), not imports it."""
    base = _SOURCE_ROOT / Path(*module.split("."))
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return True
    return re.search(rf"^(class|def) {re.escape(name)}\b|^{re.escape(name)}\s*[:=]", text, re.MULTILINE) is not None


def _mark_sibling_reexports(objects: dict[str, Any], modules: list[str]) -> None:
    """Mark a module's re-export of a sibling module's object (``dynamodb_local`` gathering ``emulator``'s names) as
    an alias of the defining module's entry, so that a short reference finds one target."""
    for module in modules:
        package = module.rsplit(".", 1)[0]
        for name in [
            name for name in objects if name.startswith(module + ".") and name.count(".") == module.count(".") + 1
        ]:
            short = name[len(module) + 1 :]
            entry = objects[name]
            if entry.aliased or _defines(module, short):
                continue
            siblings = [
                m for m in modules if m != module and m.rsplit(".", 1)[0] == package and f"{m}.{short}" in objects
            ]
            if any(_defines(sibling, short) for sibling in siblings):
                objects[name] = entry._replace(aliased=True)


def _unresolved_in_guides(app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement) -> None:
    """Warn about a Python reference of a guide that resolves to nothing (the API pages are left to autoapi).

    Sphinx only warns about unresolved references with ``nitpicky``, which the generated API pages cannot pass
    (``botocore client`` and the like in docstrings). A guide naming a class or method that was renamed must fail
    the build, so that the guide is fixed.

    :param app: Sphinx = the application
    :param env: BuildEnvironment = the environment
    :param node: pending_xref = the reference nothing resolved
    :param contnode: TextElement = its content
    :return: None = the reference stays unresolved
    """
    if node.get("refdomain") == "py" and not str(node.get("refdoc", "")).startswith("autoapi/"):
        _LOGGER.warning("guide names %s, which the API reference does not have", node["reftarget"], location=node)


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the build hooks of this project.

    :param app: Sphinx = the application
    :return: Dict[str, Any] = extension metadata
    """
    app.connect("env-updated", _mark_reexports_as_aliases)
    app.connect("missing-reference", _unresolved_in_guides, priority=950)  # after the Python domain's own resolver
    return {"parallel_read_safe": True}
