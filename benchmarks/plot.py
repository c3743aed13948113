"""The plot for the docs: feature throughput, aggregation memory and capacity units against N."""

from __future__ import annotations

from pathlib import Path
from typing import Any

STORAGE_STYLES = {
    "ours": ("tab:blue", "o"),
    "ours_region": ("tab:green", "P"),
    "floor": ("tab:gray", "s"),
    "classic": ("tab:red", "^"),
}
AGGREGATION_STYLES = {
    "ours_stream": ("tab:blue", "o"),
    "ours_collection": ("tab:cyan", "D"),
    "ours_list": ("tab:purple", "v"),
    "floor": ("tab:gray", "s"),
    "classic": ("tab:red", "^"),
}


def _series(sizes: list[dict[str, Any]], phase: str, variant: str, key: str) -> tuple[list[int], list[float]]:
    xs: list[int] = []
    ys: list[float] = []
    for entry in sizes:
        value = entry[phase].get(variant, {}).get(key)
        if isinstance(value, (int, float)):
            xs.append(int(entry["n"]))
            ys.append(float(value))
    return xs, ys


def plot_results(results: dict[str, Any], path: Path) -> Path:
    """Draw storage and aggregation throughput, aggregation peak memory and capacity units against N into a PNG.

    :param results: Dict[str, Any] = the run's figures (``feature_path`` section)
    :param path: Path = the PNG to write
    :return: Path = the PNG written
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = results.get("feature_path", {}).get("sizes", [])
    figure, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    (store_axis, read_axis), (memory_axis, units_axis) = axes
    for variant, (colour, marker) in STORAGE_STYLES.items():
        xs, ys = _series(sizes, "storage", variant, "features_per_second")
        if xs:
            store_axis.plot(xs, ys, color=colour, marker=marker, label=variant)
    for variant, (colour, marker) in AGGREGATION_STYLES.items():
        xs, ys = _series(sizes, "aggregation", variant, "features_per_second")
        if xs:
            read_axis.plot(xs, ys, color=colour, marker=marker, label=variant)
        xs, ys = _series(sizes, "aggregation", variant, "peak_rss_delta_mib")
        if xs:
            memory_axis.plot(xs, ys, color=colour, marker=marker, label=variant)
    for variant, (colour, marker) in STORAGE_STYLES.items():
        if variant in ("floor", "ours_region"):  # the floor sends ours' requests, by region the same items: same units
            continue
        xs, ys = _series(sizes, "storage", variant, "write_capacity_units")
        if xs:
            units_axis.plot(xs, ys, color=colour, marker=marker, label=f"{variant} write (storage)")
        reader = "ours_stream" if variant == "ours" else variant
        xs, ys = _series(sizes, "aggregation", reader, "read_capacity_units")
        if xs:
            units_axis.plot(xs, ys, color=colour, marker=marker, linestyle="--", label=f"{variant} read (aggregation)")
    titles = (
        (store_axis, "Storage throughput", "features / s"),
        (read_axis, "Aggregation throughput", "features / s"),
        (memory_axis, "Aggregation peak RSS above baseline", "MiB"),
        (units_axis, "Capacity units consumed", "capacity units"),
    )
    for axis, title, unit in titles:
        axis.set_title(title)
        axis.set_xlabel("N (detections)")
        axis.set_ylabel(unit)
        axis.set_xscale("log")
        axis.grid(True, which="both", alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize="small")
    store_axis.set_yscale("log")
    read_axis.set_yscale("log")
    units_axis.set_yscale("log")
    machine = results.get("machine", {})
    figure.suptitle(
        f"DynamoDB Local on 127.0.0.1, {machine.get('cpus_usable', '?')} CPUs, "
        f"{results.get('feature_path', {}).get('workers', '?')} writer threads ({results.get('created', '')})",
        fontsize="medium",
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
