"""``python -m benchmarks``: run every benchmark once, side by side, and write the results.

Output: tables on stdout; under ``--out`` (default ``benchmarks/results``, git-ignored) ``bench-<stamp>.json`` with
every figure, ``bench-<stamp>.png`` (throughput and memory against N) and ``bench-<stamp>.md`` (the tables as
Markdown), each also copied to ``latest.*``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: Where results go unless --out says otherwise (git-ignored).
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
DEFAULT_SIZES = (10_000, 100_000)
LARGE_SIZE = 1_000_000
QUICK_SIZES = (500,)
QUICK_OP_CALLS = 5


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"sizes are integers separated by commas, got {text!r}") from err
    if not sizes or any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"sizes are positive integers, got {text!r}")
    return sizes


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks``.

    :return: argparse.ArgumentParser = the parser
    """
    cli = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Feature path, per-operation latency, floor and classic layout, against DynamoDB Local.",
    )
    cli.add_argument(
        "--sizes", type=_sizes, default=None, help="values of N for the feature path (default 10000,100000)"
    )
    cli.add_argument("--large", action="store_true", help=f"add N={LARGE_SIZE:,}")
    cli.add_argument("--workers", type=int, default=None, help="threads storing tiles (default 8)")
    cli.add_argument("--op-calls", type=int, default=None, help="timed calls per operation and side (default 200)")
    cli.add_argument("--repeat", type=int, default=None, help="repetitions of each feature variant (default 3)")
    cli.add_argument("--endpoint-url", default=None, help="use this DynamoDB endpoint instead of starting one")
    cli.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results folder (default {DEFAULT_OUT})")
    cli.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of the whole pipeline")
    cli.add_argument("--seed", type=int, default=1, help="seed of the synthetic detections (default 1)")
    cli.add_argument("--skip-operations", action="store_true", help="skip the per-operation benchmark")
    cli.add_argument("--skip-features", action="store_true", help="skip the feature path benchmark")
    cli.add_argument("--skip-tiles", action="store_true", help="skip the add_tiles against add_tile benchmark")
    cli.add_argument("--only", default="", help="comma-separated substrings of operation names to measure")
    cli.add_argument(
        "--variants",
        default="",
        help="comma-separated feature-path variants to run (default all: ours, floor, classic, ours_stream, "
        "ours_collection, ours_list); e.g. ours,ours_stream for the memory of a streamed 1M aggregation",
    )
    return cli


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """Resolve the options into the run's settings (``--quick`` shrinks what was not given).

    :param args: argparse.Namespace = the parsed options
    :return: Dict[str, Any] = sizes, workers, op_calls, repeat, seed, quick, endpoint
    """
    sizes = list(args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES))
    if args.large and LARGE_SIZE not in sizes:
        sizes.append(LARGE_SIZE)
    return {
        "sizes": sorted(sizes),
        "workers": max(1, args.workers or (4 if args.quick else 8)),
        "op_calls": max(2, args.op_calls or (QUICK_OP_CALLS if args.quick else 200)),
        "repeat": max(1, args.repeat or (1 if args.quick else 3)),
        "seed": args.seed,
        "quick": bool(args.quick),
        "endpoint": "given" if args.endpoint_url else "DynamoDB Local started in memory",
        "only": [part for part in args.only.split(",") if part],
        "skip_operations": bool(args.skip_operations),
        "skip_features": bool(args.skip_features),
        "skip_tiles": bool(getattr(args, "skip_tiles", False)),
        "variants": [part.strip() for part in args.variants.split(",") if part.strip()],
    }


def log(message: str) -> None:
    """Print a progress message on stderr.

    :param message: str = the message
    :return: None
    """
    print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace, argv: Sequence[str] = ()) -> dict[str, Any]:
    """Run the benchmarks and write their results.

    :param args: argparse.Namespace = the parsed options
    :param argv: Sequence[str] = the command line they came from, for the record
    :return: Dict[str, Any] = every figure (also written as JSON)
    """
    from .binding import run_binding
    from .env import dynamodb_endpoint, machine_info, use_fake_credentials
    from .feature_path import FeaturePathConfig, run_feature_path
    from .operations import run_operations
    from .plot import plot_results
    from .report import evaluate_targets, markdown, print_report, write_json

    config = settings(args)
    use_fake_credentials()
    run_id = uuid.uuid4().hex[:8]
    created = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "schema": 1,
        "created": created.isoformat(),
        "command": ["python", "-m", "benchmarks", *argv],
        "config": config,
    }
    with dynamodb_endpoint(args.endpoint_url) as endpoint_url:
        results["machine"] = machine_info(external_endpoint=bool(args.endpoint_url))
        results["versions"] = results["machine"].pop("versions")
        if not config["skip_operations"]:
            from model_runner.database import TableNames, create_tables, delete_tables

            names = TableNames.resolve(prefix=f"bench-{run_id}-")
            create_tables(names, host=endpoint_url)
            log(f"per-operation latency: {config['op_calls']} calls per operation and side")
            try:
                results["operations"] = run_operations(endpoint_url, names, config["op_calls"], config["only"])
            finally:
                delete_tables(names, host=endpoint_url)
        if not config["skip_tiles"]:
            results["tiles"] = tiles_benchmark(endpoint_url, run_id, 1 if config["quick"] else 3)
        if not config["skip_features"]:
            feature_config = FeaturePathConfig(
                endpoint_url=endpoint_url,
                sizes=config["sizes"],
                workers=config["workers"],
                repeat=config["repeat"],
                seed=config["seed"],
                warmup=not config["quick"],
                run_id=run_id,
                variants=tuple(config["variants"]),
            )
            results["feature_path"] = run_feature_path(feature_config, log)
    log("bound-model cache: memory of binding many table names")
    results["binding"] = run_binding()
    if hasattr(os, "getloadavg"):
        results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["floor"] = floor_summary(results)
    results["classic"] = classic_summary(results)
    results["targets"] = evaluate_targets(results)
    results["duration_seconds"] = round(time.perf_counter() - started, 1)

    out: Path = args.out
    stamp = created.strftime("%Y%m%dT%H%M%SZ")
    json_path, png_path, md_path = (out / f"bench-{stamp}.{suffix}" for suffix in ("json", "png", "md"))
    results["files"] = {"json": str(json_path), "png": str(png_path), "markdown": str(md_path)}
    out.mkdir(parents=True, exist_ok=True)
    plot_results(results, png_path)
    md_path.write_text(markdown(results) + "\n")
    write_json(results, json_path)
    for path in (json_path, png_path, md_path):
        shutil.copyfile(path, out / f"latest{path.suffix}")
    print_report(results)
    log(f"results: {json_path}\nplot:    {png_path}\ntables:  {md_path}")
    return results


def tiles_benchmark(endpoint_url: str, run_id: str, repeat: int) -> dict[str, Any]:
    """Measure a 400-tile region recorded with add_tiles in batches of 25 against 400 add_tile calls.

    :param endpoint_url: str = the DynamoDB endpoint
    :param run_id: str = the run's id, for the table name
    :param repeat: int = repetitions of each way
    :return: Dict[str, Any] = the figures of :func:`benchmarks.tiles.run_tiles`
    """
    from model_runner.database import RegionRequestTable

    from .tiles import run_tiles

    table = RegionRequestTable(f"bench-{run_id}-tiles", host=endpoint_url)
    table.model.create_table(wait=True, billing_mode="PAY_PER_REQUEST")
    log(f"tiles: a 400-tile region, add_tiles in batches of 25 against add_tile, {repeat} times each")
    try:
        return run_tiles(endpoint_url, table.table_name, repeat)
    finally:
        table.model.delete_table()


def floor_summary(results: dict[str, Any]) -> dict[str, Any]:
    """Gather what the floor comparison found: ours / floor per operation and for the feature path.

    :param results: Dict[str, Any] = the run's figures
    :return: Dict[str, Any] = operation ratios and feature path ratios per N
    """
    operations = {
        op["name"]: {"ratio_median": op["ratio_median"], "ratio_p95": op["ratio_p95"]}
        for op in results.get("operations", {}).get("operations", [])
        if "error" not in op
    }
    feature_path = {
        str(entry["n"]): {
            "storage_time_ours_over_floor": entry["ratios"].get("storage_time_ours_over_floor"),
            "aggregation_throughput_ours_over_floor": entry["ratios"].get("aggregation_throughput_stream_over_floor"),
        }
        for entry in results.get("feature_path", {}).get("sizes", [])
    }
    return {"operations": operations, "feature_path": feature_path}


def classic_summary(results: dict[str, Any]) -> dict[str, Any]:
    """Gather what the classic layout comparison found, per N.

    :param results: Dict[str, Any] = the run's figures
    :return: Dict[str, Any] = ours / classic ratios per N
    """
    keys = (
        "storage_wcu_ours_over_classic",
        "storage_bytes_ours_over_classic",
        "storage_time_ours_over_classic",
        "aggregation_throughput_list_over_classic",
        "aggregation_throughput_stream_over_classic",
        "aggregation_rcu_ours_over_classic",
    )
    return {
        str(entry["n"]): {key: entry["ratios"].get(key) for key in keys}
        for entry in results.get("feature_path", {}).get("sizes", [])
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks``.

    :param argv: Optional[Sequence[str]] = the options; sys.argv[1:] when None
    :return: int = exit status (0: the run completed, whatever the targets say)
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    run(parser().parse_args(arguments), arguments)
    return 0
