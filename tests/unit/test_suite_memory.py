"""``python -m benchmarks.suite_memory`` (``make test-memory``): what it reports about a command's process tree.

The measured command here is a small Python tree (a parent and a child that holds 80 MiB), so the figures are known.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]

#: A parent that starts a child holding 80 MiB (touched, so resident), prints a pytest-like summary, then exits.
TREE = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "b = bytearray(80 * 2**20); import time; time.sleep(1.5)"])
child.wait()
print("============ 3 passed in 1.50s ============", flush=True)
time.sleep(0.5)
sys.exit(int(sys.argv[1]))
"""


def _measure(
    tmp_path: Path, exit_status: int, *options: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = tmp_path / "memory.json"
    command = [sys.executable, "-m", "benchmarks.suite_memory", "--json", str(out), "--interval", "0.05", *options]
    done = subprocess.run(
        [*command, "--", sys.executable, "-c", TREE, str(exit_status)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done, json.loads(out.read_text())


def test_the_peak_counts_every_process_of_the_tree_and_the_exit_after_the_summary(tmp_path: Path) -> None:
    done, figures = _measure(tmp_path, 0)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed in 1.50s" in done.stdout  # the command's output is passed through
    assert 80 < figures["peak_pss_mib"] < 200
    assert figures["rss_at_peak_mib"] >= figures["peak_pss_mib"]
    assert figures["processes_at_peak"] == 2
    assert any("bytearray" in process["command"] for process in figures["top_at_peak"])
    assert 0.3 <= figures["exit_after_summary_seconds"] < 2.0
    assert "peak PSS of the process tree" in done.stdout and "after its last pytest summary line" in done.stdout


def test_a_failing_command_fails_and_a_peak_over_the_limit_fails(tmp_path: Path) -> None:
    failed, _ = _measure(tmp_path, 4)
    assert failed.returncode == 4
    over, _ = _measure(tmp_path, 0, "--max-pss-mib", "50")
    assert over.returncode == 3
    assert "above the limit of 50 MiB" in over.stdout
    within, _ = _measure(tmp_path, 0, "--max-pss-mib", "1000")
    assert within.returncode == 0
