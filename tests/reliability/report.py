"""Print the figures of the last reliability run as the Markdown tables of docs/reliability.md.

Usage: ``python tests/reliability/report.py [.cache/reliability/last-run.json]``; paste the output into the page.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DEFAULT = Path(__file__).resolve().parents[2] / ".cache" / "reliability" / "last-run.json"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def render(document: dict[str, Any]) -> str:
    """Render the report as Markdown.

    :param document: Dict[str, Any] = the JSON written by the suite
    :return: str = the Markdown
    """
    scenarios: dict[str, dict[str, Any]] = document["scenarios"]
    runs = {name: figures for name, figures in scenarios.items() if "cases" not in figures}
    fuzz = {name: figures for name, figures in scenarios.items() if "cases" in figures}
    lines = [
        f"Run of {document['finished']} (scale {document['scale']}, seed {document['seed']}, "
        f"{document['cpus']} CPUs, Python {document['python']}): {document['session_seconds']:.0f} s for the session.",
        "",
        "| scenario | operations | requests | faults injected | retries | gave up | seconds | items checked "
        "| discrepancies |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for name, f in runs.items():
        faults = f.get("faults_by_kind") or f.get("faults")
        total = f.get("faults")
        faults_cell = f"{total} ({_cell(faults)})" if isinstance(faults, dict) else _cell(total)
        lines.append(
            f"| {name} | {_cell(f.get('operations'))} | {_cell(f.get('requests'))} | {faults_cell} "
            f"| {_cell(f.get('retries'))} | {_cell(f.get('gave_up'))} | {_cell(f.get('seconds'))} "
            f"| {_cell(f.get('items_checked'))} | {_cell(f.get('discrepancies'))} |"
        )
    totals = document["totals"]
    lines += [
        f"| **total** | {_cell(sum(f.get('operations', 0) for f in runs.values()))} "
        f"| {_cell(sum(f.get('requests', 0) for f in runs.values()))} "
        f"| {_cell(sum(f.get('faults', 0) for f in runs.values()))} "
        f"| {_cell(sum(f.get('retries', 0) for f in runs.values()))} "
        f"| {_cell(sum(f.get('gave_up', 0) for f in runs.values()))} "
        f"| {_cell(sum(f.get('seconds', 0) for f in runs.values()))} "
        f"| {_cell(sum(f.get('items_checked', 0) for f in runs.values()))} | {_cell(totals.get('discrepancies'))} |",
        "",
        "| generated inputs | cases | discrepancies |",
        "|---|---:|---:|",
    ]
    for name, f in fuzz.items():
        lines.append(f"| {name} | {f['cases']} | {f.get('discrepancies', 0)} |")
    lines.append(f"| **total** | {sum(f['cases'] for f in fuzz.values())} | 0 |")
    return "\n".join(lines)


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    print(render(json.loads(path.read_text())))
