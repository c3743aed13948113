"""Memory and exit time of a command's whole process tree: ``python -m benchmarks.suite_memory`` (``make test-memory``).

It runs a command (by default ``make test``), echoes its output, and samples every process the command starts
(pytest and its xdist workers, the DynamoDB Local JVMs, Chromium and playwright's driver) every ``--interval``
seconds. For each sample it sums the proportional set size (PSS, from ``/proc/PID/smaps_rollup``: a page shared by k
processes counts 1/k in each, so the sum is the memory the tree really holds) and the resident set size (RSS, which
counts shared pages once per process, so its sum is higher). It reports the peak PSS sum with the RSS sum of that
sample, the highest RSS sum, the processes that held most at the peak, the run time, and how long the command took
to exit after the last pytest summary line it printed.

Linux only (``/proc``). The sampler itself is not part of the tree it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

#: The command measured when none is given.
DEFAULT_COMMAND = ("make", "--no-print-directory", "test")
#: Seconds between two samples.
DEFAULT_INTERVAL = 0.2
#: Processes listed at the peak.
DEFAULT_TOP = 12
#: A pytest summary line, e.g. ``==== 924 passed, 2 skipped in 221.50s (0:03:41) ====``.
SUMMARY_LINE = re.compile(r"^=+ .*\b(passed|failed|errors?|skipped|deselected|no tests ran)\b.* in [0-9.]+s.*=+$")


@dataclass(frozen=True)
class ProcessMemory:
    """One process of the tree in one sample."""

    #: Process id.
    pid: int
    #: Proportional set size, KiB.
    pss_kib: int
    #: Resident set size, KiB.
    rss_kib: int
    #: The command line, cut to 120 characters.
    command: str


@dataclass
class Measurement:
    """What a run measured; sizes in MiB, times in seconds."""

    #: The command run.
    command: list[str]
    #: Its exit status.
    returncode: int = 0
    #: When it started, UTC, ISO 8601.
    started: str = ""
    #: From start to exit.
    seconds: float = 0.0
    #: Samples taken.
    samples: int = 0
    #: CPU seconds (user + system) of the command and the descendants it waited for: the work done, whatever else
    #: ran on the machine.
    cpu_seconds: float = 0.0
    #: The machine's 1-minute load average at the start and at the end (other work slows the run down).
    load_average: tuple[float, float] = (0.0, 0.0)
    #: The highest PSS sum of the tree.
    peak_pss_mib: float = 0.0
    #: The RSS sum of the sample with the highest PSS sum.
    rss_at_peak_mib: float = 0.0
    #: The highest RSS sum of the tree (may be another sample).
    peak_rss_mib: float = 0.0
    #: Seconds from start to the peak.
    peak_at_seconds: float = 0.0
    #: Processes in the tree at the peak.
    processes_at_peak: int = 0
    #: The processes that held most PSS at the peak, largest first.
    top_at_peak: list[ProcessMemory] = field(default_factory=list)
    #: pytest summary lines printed, with the second each was printed at.
    summaries: list[tuple[float, str]] = field(default_factory=list)
    #: Seconds from the last summary line to the command's exit (None without a summary line).
    exit_after_summary_seconds: float | None = None
    #: Every sample: second, PSS sum, RSS sum and PSS by kind of process (MiB); kept only when asked for.
    timeline: list[tuple[float, float, float, dict[str, float]]] = field(default_factory=list)


#: Kinds of process in a sample's breakdown, by a word of the command line (the first that matches).
KINDS = (("java", "java"), ("chromium", "chromium"), ("node", "node"), ("python", "python"))


def kind(command: str) -> str:
    """Name the kind of a process for the timeline's breakdown.

    :param command: str = its command line
    :return: str = ``java``, ``chromium``, ``node``, ``python`` or ``other``
    """
    program = command.split(" ", 1)[0].rsplit("/", 1)[-1]
    for word, name in KINDS:
        if word in program:
            return name
    return "other"


def _kib_field(text: str, name: str) -> int:
    """Read one ``Name:   1234 kB`` field of a ``/proc`` memory file.

    :param text: str = the file's content
    :param name: str = the field name without the colon
    :return: int = the value in KiB, 0 when the field is missing
    """
    found = re.search(rf"^{name}:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) if found else 0


def process_memory(pid: int) -> ProcessMemory | None:
    """Read one process's PSS and RSS.

    :param pid: int = the process id
    :return: Optional[ProcessMemory] = its memory, None when it has gone (or cannot be read)
    """
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    return ProcessMemory(pid, _kib_field(rollup, "Pss"), _kib_field(rollup, "Rss"), command[:120])


def _children_of() -> dict[int, list[int]]:
    """Map every process id to its children's ids, from one pass over ``/proc``.

    :return: Dict[int, List[int]] = parent id -> child ids
    """
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name (2nd field) may hold spaces and parentheses: the parent id follows the last ")"
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    return children


def tree(root: int) -> list[int]:
    """List a process and all its descendants.

    :param root: int = the root's process id
    :return: List[int] = the root's id, then its descendants' ids
    """
    children = _children_of()
    found = [root]
    for pid in found:  # grows while it is walked: breadth first
        found.extend(children.get(pid, ()))
    return found


def sample(root: int) -> list[ProcessMemory]:
    """Read the memory of every process of a tree.

    :param root: int = the root's process id
    :return: List[ProcessMemory] = one entry per process still alive
    """
    return [memory for memory in (process_memory(pid) for pid in tree(root)) if memory is not None]


def _echo(stream: IO[str], started: float, measurement: Measurement) -> None:
    """Copy the command's output to ours, noting when each pytest summary line appears.

    :param stream: IO[str] = the command's merged stdout and stderr
    :param started: float = ``time.monotonic()`` at the start
    :param measurement: Measurement = where summary lines are recorded
    """
    for line in stream:
        sys.stdout.write(line)
        sys.stdout.flush()
        if SUMMARY_LINE.match(line.strip()):
            measurement.summaries.append((round(time.monotonic() - started, 2), line.strip()))


def measure(
    command: Sequence[str], interval: float = DEFAULT_INTERVAL, top: int = DEFAULT_TOP, timeline: bool = False
) -> Measurement:
    """Run a command to its end and measure its process tree's memory.

    :param command: Sequence[str] = the command and its arguments
    :param interval: float = seconds between two samples
    :param top: int = processes listed at the peak
    :param timeline: bool = keep every sample's sums and breakdown in ``Measurement.timeline``
    :return: Measurement = the figures
    """
    measurement = Measurement(command=list(command), started=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
    load_before = os.getloadavg()[0]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    assert process.stdout is not None
    echo = threading.Thread(target=_echo, args=(process.stdout, started, measurement), daemon=True)
    echo.start()
    try:
        while process.poll() is None:
            processes = sample(process.pid)
            pss = sum(memory.pss_kib for memory in processes) / 1024
            rss = sum(memory.rss_kib for memory in processes) / 1024
            measurement.samples += 1
            if timeline:
                kinds: dict[str, float] = {}
                for memory in processes:
                    kinds[kind(memory.command)] = kinds.get(kind(memory.command), 0) + memory.pss_kib / 1024
                second = round(time.monotonic() - started, 1)
                sums = {name: round(value, 1) for name, value in kinds.items()}
                measurement.timeline.append((second, round(pss, 1), round(rss, 1), sums))
            measurement.peak_rss_mib = max(measurement.peak_rss_mib, round(rss, 1))
            if pss > measurement.peak_pss_mib:
                measurement.peak_pss_mib = round(pss, 1)
                measurement.rss_at_peak_mib = round(rss, 1)
                measurement.peak_at_seconds = round(time.monotonic() - started, 1)
                measurement.processes_at_peak = len(processes)
                measurement.top_at_peak = sorted(processes, key=lambda memory: -memory.pss_kib)[:top]
            time.sleep(interval)
    except KeyboardInterrupt:
        process.wait()  # the command got the same Ctrl-C: let it stop, then report what was measured
    ended = time.monotonic()
    echo.join(timeout=5)
    measurement.returncode = process.returncode
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime
    measurement.cpu_seconds = round(cpu, 1)
    measurement.load_average = (round(load_before, 2), round(os.getloadavg()[0], 2))
    measurement.seconds = round(ended - started, 1)
    if measurement.summaries:
        measurement.exit_after_summary_seconds = round(ended - started - measurement.summaries[-1][0], 1)
    return measurement


def report(measurement: Measurement) -> str:
    """Describe a measurement for a reader.

    :param measurement: Measurement = the figures
    :return: str = a few lines of text
    """
    lines = [
        f"command: {' '.join(measurement.command)} (exit status {measurement.returncode})",
        f"started {measurement.started}, ran {measurement.seconds:.1f} s ({measurement.cpu_seconds:.1f} CPU seconds;"
        f" load average {measurement.load_average[0]:.2f} before, {measurement.load_average[1]:.2f} after),"
        f" {measurement.samples} samples",
        f"peak PSS of the process tree: {measurement.peak_pss_mib:,.0f} MiB"
        f" ({measurement.peak_pss_mib / 1024:.2f} GiB) at {measurement.peak_at_seconds:.0f} s;"
        f" RSS sum then {measurement.rss_at_peak_mib:,.0f} MiB; highest RSS sum {measurement.peak_rss_mib:,.0f} MiB",
    ]
    if measurement.exit_after_summary_seconds is None:
        lines.append("no pytest summary line seen")
    else:
        lines.append(f"exited {measurement.exit_after_summary_seconds:.1f} s after its last pytest summary line")
    lines.append(f"processes at the peak: {measurement.processes_at_peak}; the largest (PSS MiB, RSS MiB, command):")
    for memory in measurement.top_at_peak:
        lines.append(f"  {memory.pss_kib / 1024:7.0f} {memory.rss_kib / 1024:7.0f}  {memory.command}")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.suite_memory``.

    :return: argparse.ArgumentParser = the parser
    """
    cli = argparse.ArgumentParser(
        prog="python -m benchmarks.suite_memory",
        description="Run a command (default: make test) and report its process tree's peak memory and exit time.",
    )
    cli.add_argument("--interval", type=float, default=DEFAULT_INTERVAL, help="seconds between samples (default 0.2)")
    cli.add_argument("--top", type=int, default=DEFAULT_TOP, help="processes listed at the peak (default 12)")
    cli.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    cli.add_argument("--timeline", action="store_true", help="keep every sample in the JSON file")
    cli.add_argument(
        "--max-pss-mib", type=float, default=None, help="exit with status 3 when the peak PSS is above this"
    )
    cli.add_argument("command", nargs="*", help="the command to measure, after `--` (default: make test)")
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    :param argv: Optional[Sequence[str]] = arguments (default ``sys.argv[1:]``)
    :return: int = the command's exit status; 3 when it passed but its peak was above ``--max-pss-mib``
    """
    args = parser().parse_args(argv)
    measurement = measure(args.command or DEFAULT_COMMAND, interval=args.interval, top=args.top, timeline=args.timeline)
    print(report(measurement), flush=True)
    if args.json is not None:
        data: dict[str, Any] = asdict(measurement)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    if measurement.returncode != 0:
        return measurement.returncode
    if args.max_pss_mib is not None and measurement.peak_pss_mib > args.max_pss_mib:
        print(f"peak PSS {measurement.peak_pss_mib:,.0f} MiB is above the limit of {args.max_pss_mib:,.0f} MiB")
        return 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
