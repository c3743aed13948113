"""Benchmarks of the model runner's DynamoDB layer: ``python -m benchmarks`` (``make bench``).

What is measured, against DynamoDB Local on 127.0.0.1, in one run on the same data:

* the feature path (:mod:`benchmarks.feature_path`): storing and aggregating N detections, tile by tile from a pool
  of threads, with throughput, requests, capacity units, items and bytes written, and peak memory;
* per-operation latency (:mod:`benchmarks.operations`) of every repository method, with its DynamoDB requests;
* the floor (:mod:`benchmarks.floor`): the same requests sent straight through botocore, ours / floor = our overhead;
* the classic layout (:mod:`benchmarks.classic`): one GeoJSON string per feature, ours / classic = our gain.

Ratios are measured side by side in the same run; absolute times on a shared machine are not comparable.
"""

from .cli import main

__all__ = ["main"]
