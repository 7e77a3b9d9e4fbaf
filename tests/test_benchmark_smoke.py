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


@pytest.mark.real_model
def test_long_context_sweep_paths_agree_on_smollm2():
    """The benchmark's two sweep paths (former: patterns + dense oracles; now: streaming
    statistics + sparse pattern entries) give the same measures on real text."""
    import numpy as np

    path = Path(__file__).parents[1] / "benchmarks" / "long_context.py"
    spec = importlib.util.spec_from_file_location("bench_long_context", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    dense = bench.run_case("sweep_dense", 96, "smollm2-135m")["measures"]
    stream = bench.run_case("sweep_stream", 96, "smollm2-135m")["measures"]
    assert set(dense) == set(stream)
    for key in dense:
        np.testing.assert_allclose(stream[key], dense[key], rtol=1e-4, atol=2e-5, err_msg=key)


def test_exactness_script_checks_one_pinned_config_in_the_interpreter():
    """The GPU exactness script's per-config check (autotuner pinned to one config) runs and
    passes on a small case in the CPU interpreter; a config the autotuner lacks is refused."""
    from interp.kernels import attention_stats as kernels

    path = Path(__file__).parents[1] / "benchmarks" / "triton_exactness.py"
    spec = importlib.util.spec_from_file_location("bench_triton_exactness", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.DEVICE = "cpu"
    cfg = kernels._INTERPRETER_CONFIG
    row = bench._check(((2, 4, 2, 37, 16, True, True), "float32", cfg, cfg))
    assert row["ok"], row
    for prefix in ("", "fused_", "fused_det_"):  # two passes; one pass given the LSE
        assert row[f"{prefix}argmax_agreement"] == 1.0, prefix
        assert max(row[f"{prefix}max_rel_err"].values()) < 1e-4, prefix
    with pytest.raises(AssertionError):  # a config the autotuner does not hold is refused
        bench._check(((1, 2, 2, 8, 16, True, False), "float32", (999, 16, 4, 1), cfg))


def test_gpu_results_plot(tmp_path):
    """The committed GPU results draw (one panel per shape) without a GPU."""
    import json
    import shutil

    results = Path(__file__).parents[1] / "benchmarks" / "results"
    found = sorted(results.glob("attention_stats_NVIDIA*.json"))
    if not found:
        pytest.skip("no GPU results committed yet (benchmarks/gpu_lease.sh writes them)")
    src = tmp_path / found[0].name
    shutil.copy(found[0], src)
    spec = importlib.util.spec_from_file_location("bench_attention_stats", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    png = bench.plot(src)
    assert png.stat().st_size > 10_000
    rows = json.loads(src.read_text())["rows"]
    assert any(r["case"] == "triton" and r.get("pass1_s") for r in rows)
