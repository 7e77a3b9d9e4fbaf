"""The benchmark script still runs (one tiny per-layer case each), so it cannot rot unnoticed.
Its figures are not asserted: speed belongs in the benchmark's own table, not in tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "attention_stats.py"


@pytest.mark.parametrize("case", ["dense", "torch", "sdpa"])
def test_benchmark_case_runs(case):
    spec = importlib.util.spec_from_file_location("bench_attention_stats", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = bench.run_case(case, 64, "smollm2", "cpu")
    assert out["seconds"] > 0 and out["peak_gb"] > 0
