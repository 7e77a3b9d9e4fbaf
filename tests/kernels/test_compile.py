"""Every Triton kernel compiles with the real compiler for sm_80 and sm_90 (no GPU needed).

The interpreter, which runs the kernels in every other test, accepts code the GPU compiler
refuses; this builds PTX and a cubin for each (kernel, dtype, head dim) the launcher can produce,
with the (causal, key mask) flags and autotune configs cycled over them. The full product is
``python -m interp.kernels.compile_check --all``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("triton", reason="the compile check needs Triton (a dependency)")


def test_compile_variants_cover_every_launch_option():
    from interp.kernels import attention_stats as ks
    from interp.kernels import fused_stats
    from interp.kernels.compile_check import _variants

    everything = [*ks.compile_variants(), *fused_stats.compile_variants()]
    labels = [v[0] for v in everything]
    assert len(labels) == len(set(labels))
    for kind in ("row", "col", "fused"):
        for dtype in ("fp32", "bf16", "fp16"):
            for d in ks.HEAD_DIMS:
                assert any(lab.startswith(f"{kind}-{dtype}-d{d}-") for lab in labels)
    chosen = [v[0] for v in _variants(full=False)]
    assert len(chosen) == 3 * 3 * len(ks.HEAD_DIMS)  # one per (kernel, dtype, head dim)
    for flags in ("causal-nomask", "causal-mask", "bidir-nomask", "bidir-mask"):
        for kind in ("row", "col", "fused"):
            assert any(lab.startswith(kind) and flags in lab for lab in chosen), (kind, flags)
    for kind in ("row", "col", "fused"):  # every tuned config of each kernel is built
        table = "col" if kind == "col" else "row"  # the fused kernel uses pass 1's configs
        for bm, bn, w, s in {c for d in ks.HEAD_DIMS for c in ks.gpu_configs(table, d, 2)}:
            cfg = f"{bm}x{bn}w{w}s{s}"
            assert any(lab.startswith(kind) and f"-{cfg}g" in lab for lab in chosen), (kind, cfg)
    for group in (1, 2, 4):  # pass 1 and the fused pass with 1, 2 and 4 heads per program
        for kind in ("row", "fused"):
            assert any(lab.startswith(kind) and lab.endswith(f"g{group}") for lab in chosen), (
                kind,
                group,
            )
    for kind in ("row", "fused"):  # both argmax strategies of the row-statistic kernels
        trims = {v[3]["TRIM"] for v in _variants(full=False) if v[0].startswith(kind)}
        assert trims == {True, False}, kind
    # the fused kernel with and without its atomic column sums
    assert {"COLUMNS" in v[3] and v[3]["COLUMNS"] for v in everything if v[0][:5] == "fused"} == {
        True,
        False,
    }


def test_every_kernel_compiles_for_sm80_and_sm90():
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    p = subprocess.run(
        [sys.executable, "-m", "interp.kernels.compile_check", "--arch", "80", "90"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "0 failed" in p.stdout
    assert p.stdout.count("ok   sm_80") == p.stdout.count("ok   sm_90") == 45
