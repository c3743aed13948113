"""Turn the figures into targets met or missed, a table on stdout, a JSON file and a Markdown summary."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from .tiles import tile_rows

#: The issue's targets.
OVERHEAD_MAX = 1.2
STORAGE_UNITS_MAX = 0.20
STORAGE_TIME_MAX = 0.5
AGGREGATION_LIST_OVER_CLASSIC_MIN = 5.0
AGGREGATION_STREAM_OVER_CLASSIC_MIN = 8.0
AGGREGATION_OVER_FLOOR_MIN = 0.8
#: Throughput targets against the classic layout are judged at this N and above (all sizes when none reaches it).
AGGREGATION_TARGET_N = 100_000
#: Peak RSS (above the baseline) of a streamed aggregation of this many features must stay under ...
STREAMED_TARGET_N = 1_000_000
#: ... this many MiB.
STREAMED_PEAK_MAX_MIB = 150.0
#: Streamed aggregation is "flat in N" when its peak RSS grows by at most this many MiB ...
FLAT_SLACK_MIB = 16.0
#: ... or by at most this share of what the whole-list aggregation grows by, from the smallest N to the largest.
FLAT_SHARE_OF_LIST = 0.1


def _target(
    key: str, description: str, threshold: str, measured: Any, met: bool | None, detail: str = ""
) -> dict[str, Any]:
    return {
        "id": key,
        "description": description,
        "threshold": threshold,
        "measured": measured,
        "met": met,
        "detail": detail,
    }


def _all(values: Sequence[bool | None]) -> bool | None:
    known = [value for value in values if value is not None]
    if not known:
        return None
    return all(known) and len(known) == len(values)


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Check the measured figures against the issue's targets.

    :param results: Dict[str, Any] = the run's figures (``operations`` and ``feature_path`` sections)
    :return: List[Dict[str, Any]] = one entry per target: id, description, threshold, measured, met (None when not
        measured), detail
    """
    targets: list[dict[str, Any]] = []
    operations = [op for op in results.get("operations", {}).get("operations", []) if "error" not in op]
    judged = [op for op in operations if op.get("in_overhead_target", True)]
    if judged:  # (--only may select operations outside the overhead target alone)
        ratios = {op["name"]: op["ratio_paired_median"] for op in judged}
        worst = max(ratios, key=lambda name: ratios[name])
        over = [f"{name} {ratio}x" for name, ratio in ratios.items() if ratio > OVERHEAD_MAX]
        targets.append(
            _target(
                "operation_overhead",
                "per-operation latency, ours / floor (median of interleaved pairs)",
                f"<= {OVERHEAD_MAX}",
                ratios,
                not over,
                f"worst {worst} {ratios[worst]}x" + (f"; over: {', '.join(over)}" if over else ""),
            )
        )
    if operations:
        extra = [
            f"{op['name']} {op['requests_per_call']} (fewest possible {op['expected_requests']})"
            for op in operations
            if not op["requests_target_met"]
        ]
        targets.append(
            _target(
                "requests_per_state_change",
                "DynamoDB requests per operation call",
                "the fewest DynamoDB allows (1, or 2 for end_image_request)",
                {op["name"]: op["requests_per_call"] for op in operations},
                not extra,
                "; ".join(extra),
            )
        )
    sizes = results.get("feature_path", {}).get("sizes", [])
    checks = (
        ("storage_capacity", "feature storage write capacity, ours / classic", "storage_wcu_ours_over_classic", "<="),
        ("storage_time", "feature storage wall time, ours / classic", "storage_time_ours_over_classic", "<="),
        (
            "storage_time_region",
            "feature storage wall time, ours by region (add_features_of_tiles, 25 tiles a call) / classic",
            "storage_time_ours_region_over_classic",
            "<=",
        ),
        (
            "aggregation_vs_classic",
            "aggregation throughput (get_features), ours / classic",
            "aggregation_throughput_list_over_classic",
            ">=",
        ),
        (
            "aggregation_stream_vs_classic",
            "aggregation throughput (iter_features), ours / classic",
            "aggregation_throughput_stream_over_classic",
            ">=",
        ),
        (
            "aggregation_vs_floor",
            "aggregation throughput (iter_features), ours / floor",
            "aggregation_throughput_stream_over_floor",
            ">=",
        ),
    )
    limits = {
        "storage_capacity": STORAGE_UNITS_MAX,
        "storage_time": STORAGE_TIME_MAX,
        "storage_time_region": STORAGE_TIME_MAX,
        "aggregation_vs_classic": AGGREGATION_LIST_OVER_CLASSIC_MIN,
        "aggregation_stream_vs_classic": AGGREGATION_STREAM_OVER_CLASSIC_MIN,
        "aggregation_vs_floor": AGGREGATION_OVER_FLOOR_MIN,
    }
    large = [entry for entry in sizes if entry["n"] >= AGGREGATION_TARGET_N]
    for key, description, ratio_key, sense in checks:
        limit = limits[key]
        judged = large if key.endswith("_vs_classic") and large else sizes
        if judged is large:
            description = f"{description}, at N >= {AGGREGATION_TARGET_N:,}"
        measured = {str(entry["n"]): entry["ratios"].get(ratio_key) for entry in judged}
        measured = {n: value for n, value in measured.items() if value is not None} or measured
        verdicts = [
            None if value is None else (value <= limit if sense == "<=" else value >= limit)
            for value in measured.values()
        ]
        targets.append(_target(key, description, f"{sense} {limit}", measured, _all(verdicts) if sizes else None))
    targets.append(_flat_memory(results.get("feature_path", {}).get("memory", {})))
    targets.append(_streamed_peak(sizes))
    targets.append(_binding_memory(results.get("binding", {})))
    return targets


def _streamed_peak(sizes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    peaks = {
        str(entry["n"]): entry["aggregation"].get("ours_stream", {}).get("peak_rss_delta_mib")
        for entry in sizes
        if entry["n"] >= STREAMED_TARGET_N
    }
    values = [value for value in peaks.values() if isinstance(value, (int, float))]
    return _target(
        "aggregation_memory_1m",
        f"peak RSS of a streamed aggregation (iter_features) of {STREAMED_TARGET_N:,} features, MiB above baseline",
        f"< {STREAMED_PEAK_MAX_MIB}",
        peaks or None,
        all(value < STREAMED_PEAK_MAX_MIB for value in values) if values else None,
        "" if values else f"needs N = {STREAMED_TARGET_N:,} (--large, or --sizes 1000000 --variants ours,ours_stream)",
    )


def _binding_memory(binding: dict[str, Any]) -> dict[str, Any]:
    if not binding:
        return _target("binding_memory", "memory added by binding table names", "", None, None)
    limit = binding["added_mib_max"]
    return _target(
        "binding_memory",
        f"memory added by binding {binding['table_names']} table names (x4 repositories), MiB",
        f"< {limit}",
        binding["added_mib"],
        binding["added_mib"] < limit,
        f"{binding['distinct_clients']} botocore client(s); cache holds {binding['bound_models']} classes;"
        f" a client of another endpoint adds {binding.get('mib_per_client', '?')} MiB",
    )


def _flat_memory(memory: dict[str, Any]) -> dict[str, Any]:
    stream = memory.get("ours_stream", {})
    listed = memory.get("ours_list", {})
    growth, list_growth = stream.get("growth_mib"), listed.get("growth_mib")
    met: bool | None = None
    detail = "needs at least two sizes"
    if isinstance(growth, (int, float)):
        allowed = max(FLAT_SLACK_MIB, FLAT_SHARE_OF_LIST * list_growth if isinstance(list_growth, (int, float)) else 0)
        met = growth <= allowed
        detail = f"streamed peak grew {growth} MiB (allowed {round(allowed, 1)}); get_features grew {list_growth} MiB"
    return _target(
        "aggregation_memory_flat",
        "peak RSS of streamed aggregation (iter_features) against N",
        f"growth <= max({FLAT_SLACK_MIB} MiB, {FLAT_SHARE_OF_LIST} x growth of get_features)",
        stream.get("peak_rss_delta_mib_by_n"),
        met,
        detail,
    )


# -- text ------------------------------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


#: Widest cell of the text tables; longer cells are cut (the JSON and Markdown keep them whole).
CELL_WIDTH = 72


def _cut(text: str) -> str:
    return text if len(text) <= CELL_WIDTH else text[: CELL_WIDTH - 3] + "..."


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    cells = [[str(h) for h in headers], *[[_cut(_fmt(value)) for value in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for index, row in enumerate(cells):
        lines.append(
            "  ".join(
                cell.ljust(width) if i == 0 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            )
        )
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


def operation_rows(results: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Rows of the per-operation table.

    :param results: Dict[str, Any] = the run's figures
    :return: Tuple[List[str], List[List[Any]]] = headers and rows
    """
    headers = [
        "operation",
        "requests",
        "ours median ms",
        "ours p95 ms",
        "floor median ms",
        "floor p95 ms",
        "ours/floor medians",
        "ours/floor pairs",
        "CPU us ours",
        "CPU us floor",
    ]
    rows: list[list[Any]] = []
    for op in results.get("operations", {}).get("operations", []):
        if "error" in op:
            rows.append([op["name"], "error", op["error"], None, None, None, None, None, None, None])
            continue
        rows.append(
            [
                op["name"],
                op["requests_per_call"],
                op["ours"]["median_ms"],
                op["ours"]["p95_ms"],
                op["floor"]["median_ms"],
                op["floor"]["p95_ms"],
                op["ratio_median"],
                op["ratio_paired_median"],
                op["ours_cpu_us_median"],
                op["floor_cpu_us_median"],
            ]
        )
    return headers, rows


def storage_rows(results: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Rows of the feature storage table.

    :param results: Dict[str, Any] = the run's figures
    :return: Tuple[List[str], List[List[Any]]] = headers and rows
    """
    headers = ["N", "variant", "seconds", "features/s", "requests", "WCU", "items", "item MB"]
    rows: list[list[Any]] = []
    for entry in results.get("feature_path", {}).get("sizes", []):
        for variant, figures in entry["storage"].items():
            if "error" in figures:
                rows.append([entry["n"], variant, "error", figures["error"], None, None, None, None])
                continue
            rows.append(
                [
                    entry["n"],
                    variant,
                    figures["seconds"],
                    figures["features_per_second"],
                    figures["requests"],
                    figures["write_capacity_units"],
                    figures["items_written"],
                    round(figures["item_bytes_written"] / 1e6, 2),
                ]
            )
    return headers, rows


def aggregation_rows(results: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Rows of the aggregation table.

    :param results: Dict[str, Any] = the run's figures
    :return: Tuple[List[str], List[List[Any]]] = headers and rows
    """
    headers = ["N", "variant", "seconds", "features/s", "requests", "RCU", "peak RSS +MiB", "complete"]
    rows: list[list[Any]] = []
    for entry in results.get("feature_path", {}).get("sizes", []):
        for variant, figures in entry["aggregation"].items():
            if "error" in figures:
                rows.append([entry["n"], variant, "error", figures["error"], None, None, None, None])
                continue
            rows.append(
                [
                    entry["n"],
                    variant,
                    figures["seconds"],
                    figures["features_per_second"],
                    figures["requests"],
                    figures["read_capacity_units"],
                    figures["peak_rss_delta_mib"],
                    figures.get("complete"),
                ]
            )
    return headers, rows


def ratio_rows(results: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Rows of the ratio table, one column per N.

    :param results: Dict[str, Any] = the run's figures
    :return: Tuple[List[str], List[List[Any]]] = headers and rows
    """
    sizes = results.get("feature_path", {}).get("sizes", [])
    headers = ["ratio", *[f"N={entry['n']:,}" for entry in sizes]]
    keys = list(sizes[0]["ratios"]) if sizes else []
    return headers, [[key, *[entry["ratios"].get(key) for entry in sizes]] for key in keys]


def target_rows(results: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Rows of the targets table.

    :param results: Dict[str, Any] = the run's figures, with ``targets``
    :return: Tuple[List[str], List[List[Any]]] = headers and rows
    """
    rows = []
    for target in results.get("targets", []):
        met = target["met"]
        verdict = "not measured" if met is None else ("met" if met else "NOT MET")
        measured = target["measured"]
        if isinstance(measured, dict) and target["id"] in ("operation_overhead", "requests_per_state_change"):
            measured = target["detail"] or "all"
        elif isinstance(measured, dict):
            measured = ", ".join(f"{k}: {_fmt(v)}" for k, v in measured.items())
        rows.append([target["description"], target["threshold"], measured, verdict])
    return ["target", "threshold", "measured", "verdict"], rows


def print_report(results: dict[str, Any], out: IO[str] = sys.stdout) -> None:
    """Print the tables of a run.

    :param results: Dict[str, Any] = the run's figures
    :param out: IO[str] = where to print
    :return: None
    """
    machine = results.get("machine", {})
    print(
        f"\nmodel_runner benchmarks, {results.get('created')} on {machine.get('cpu_model')} "
        f"({machine.get('cpus_usable')} CPUs), Python {results.get('versions', {}).get('python')}",
        file=out,
    )
    sections = (
        ("Per-operation latency (ours vs floor, interleaved)", operation_rows),
        ("Feature storage", storage_rows),
        ("Feature aggregation", aggregation_rows),
        ("Ratios", ratio_rows),
        ("Recording a region's tiles", tile_rows),
        ("Targets", target_rows),
    )
    for title, rows in sections:
        headers, body = rows(results)
        if not body:
            continue
        print(f"\n{title}", file=out)
        for line in _table(headers, body):
            print(line, file=out)
    print(file=out)


def markdown(results: dict[str, Any]) -> str:
    """Return the tables of a run as Markdown (for docs/benchmarks.md).

    :param results: Dict[str, Any] = the run's figures
    :return: str = Markdown
    """
    parts: list[str] = []
    sections = (
        ("Targets", target_rows),
        ("Per-operation latency", operation_rows),
        ("Feature storage", storage_rows),
        ("Feature aggregation", aggregation_rows),
        ("Ratios", ratio_rows),
        ("Recording a region's tiles", tile_rows),
    )
    for title, rows in sections:
        headers, body = rows(results)
        if not body:
            continue
        parts.append(f"### {title}\n")
        parts.append("| " + " | ".join(headers) + " |")
        parts.append("|" + "|".join("---" for _ in headers) + "|")
        for row in body:
            parts.append("| " + " | ".join(_fmt(value).replace("|", "/") for value in row) + " |")
        parts.append("")
    return "\n".join(parts)


def write_json(results: dict[str, Any], path: Path) -> None:
    """Write the figures as JSON.

    :param results: Dict[str, Any] = the run's figures
    :param path: Path = the file
    :return: None
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=False, default=str) + "\n")
