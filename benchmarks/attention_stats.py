"""Benchmark: attention statistics without the n x n matrix vs building it.

Every case runs in its own subprocess so its peak memory (ru_maxrss on CPU, max allocated on
CUDA) is its own. Prints a table and writes JSON to benchmarks/results/.

Per-layer cases (random q/k at SmolLM2's shape: 9 query heads, 3 kv heads, d 64; on a GPU
also 32 query / 8 kv heads, d 128): ``dense`` (plain softmax statistics, the oracle),
``torch`` (chunked, exact), ``triton`` (GPU only), ``sdpa`` (one
``scaled_dot_product_attention`` forward: the speed anchor) and, GPU only, ``sdpa_lse`` (the
model's attention through the op that returns each row's LSE, as ``interp.stats.capture``
runs it for the statistics), ``fused`` / ``fused_det`` (that attention plus the one-pass
statistics; ``added_x_sdpa`` = what the statistics add, in SDPA forwards). Whole-model cases
(SmolLM2-135M, all 30 layers, real text; only where transformer-lens is installed): ``tl_cache``
(transformer-lens ``run_with_cache`` of every ``hook_pattern``), ``tl_stats`` (the same
cache and then the statistics read off each pattern: what a peer needs for the same answer) and
``model_stats`` (``interp.stats.capture.model_attention_stats``).

Usage: .venv/bin/python benchmarks/attention_stats.py [--ns 512 2048 8192] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
SHAPES = {"smollm2": (9, 3, 64), "h32kv8d128": (32, 8, 128)}
GB = 2**30
TORCH_MAX_N_CUDA = 32768  # the chunked torch reference is O(n^2) work: minutes beyond this
#: GPU: the model's own attention through the op that returns its row LSE (``sdpa_lse``), and
#: that attention plus the one-pass statistics with atomic / deterministic column sums; the
#: statistics' added cost is (fused - sdpa_lse) / sdpa
FUSED_CASES = ("sdpa_lse", "fused", "fused_det")


def _gpu_slug() -> str:
    import torch

    return "".join(c if c.isalnum() else "_" for c in torch.cuda.get_device_name(0))


def _run_cuda_case(case: str, n: int, shape: str) -> dict:
    import torch

    try:
        return run_case(case, n, shape, "cuda")
    except torch.cuda.OutOfMemoryError:
        return {"skipped": "out of GPU memory", "seconds": None, "peak_gb": None}
    except Exception as e:  # noqa: BLE001 - a failing case is reported in its row
        return {"skipped": f"failed: {type(e).__name__}: {e}"[:100], "seconds": None,
                "peak_gb": None}  # fmt: skip
    finally:
        torch.cuda.empty_cache()


def _estimate_gb(case: str, n: int, heads: int) -> float:
    """Rough peak of the full-pattern cases, to skip what cannot fit."""
    if case == "dense":
        return 8 * 4 * heads * n * n / GB  # scores, p and ~6 same-size temporaries
    if case in ("tl_cache", "tl_stats"):
        return 30 * 9 * n * n * 4 / GB + 1.5  # every layer's pattern kept
    return 0.0


def _use_torch_backend_of(rev: str) -> None:
    """Swap the torch backend (``interp.stats.streaming._torch``) for the one at git revision
    ``rev``: the "before" of a speed-up, measured in the same run as the "after"."""
    from revision import module_at  # benchmarks/ (this script's folder)

    import interp.stats.streaming as streaming

    streaming._torch = module_at(rev, "interp/stats/streaming.py", "streaming_before")._torch


def run_case(case: str, n: int, shape: str, device: str) -> dict:
    """Runs inside the subprocess. ``case@REV``: the case with the torch backend of ``REV``."""
    import torch

    import interp  # noqa: F401  (sets up Triton's interpreter flag before triton loads)

    case, _, rev = case.partition("@")
    if rev:
        _use_torch_backend_of(rev)

    torch.manual_seed(0)
    before = _rss_gb()
    hq, hkv, d = SHAPES[shape]
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32

    def sync():
        if cuda:
            torch.cuda.synchronize()

    if case in ("dense", "torch", "triton", "sdpa", *FUSED_CASES):
        q = torch.randn(1, hq, n, d, device=dev, dtype=dtype)
        k = torch.randn(1, hkv, n, d, device=dev, dtype=dtype)
        v = torch.randn(1, hkv, n, d, device=dev, dtype=dtype)
        from interp.stats.capture import attention_with_lse
        from interp.stats.streaming import attention_stats

        class _Causal:  # what attention_with_lse reads off a model's attention module
            is_causal = True

        def once():
            if case == "sdpa":
                torch.nn.functional.scaled_dot_product_attention(
                    q, k, v, is_causal=True, enable_gqa=True
                )
            elif case in FUSED_CASES:  # the model's attention with its LSE (+ one-pass stats)
                _, lse = attention_with_lse(_Causal(), q, k, v, None)
                if case != "sdpa_lse":
                    attention_stats(q, k, backend="triton", lse=lse, check_lse=False,
                                    deterministic=case == "fused_det")  # fmt: skip
            else:
                attention_stats(q, k, backend=case)

    else:
        import interp as ip
        from interp.inputs.needles import haystack_text
        from interp.stats.capture import model_attention_stats
        from interp.tokens import from_token_ids

        model = ip.load_model("smollm2-135m")
        ids = model.tokenizer(haystack_text())["input_ids"][:n]
        batch = from_token_ids(model, [ids])

        def once():
            if case in ("tl_cache", "tl_stats"):
                with torch.no_grad():
                    _, cache = model.run_with_cache(
                        batch.tokens, names_filter=lambda name: name.endswith("hook_pattern")
                    )
                    if case == "tl_stats":
                        for layer in range(model.cfg.n_layers):
                            pattern_stats(cache[f"blocks.{layer}.attn.hook_pattern"])
            else:
                model_attention_stats(model, batch)

    once()  # warm-up (Triton compile and autotuning, allocator)
    sync()
    if cuda:
        return _cuda_timing(once, case)
    repeats = 3 if n <= 2048 else 1
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        once()
        sync()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"seconds": min(times), "peak_gb": peak, "above_start_gb": peak - before}


def pattern_stats(pattern) -> dict:
    """What a transformer-lens user computes from a cached pattern [1, head, n, n]: the same
    statistics ``attention_stats`` returns (interp.stats.dense, the oracle's formulas)."""
    import torch

    from interp.defaults import FAI_WINDOW, WAAD_WINDOW
    from interp.stats import dense

    p = pattern.float()
    j = torch.arange(p.shape[-1], dtype=p.dtype)
    return dict(
        entropy=torch.special.entr(p).sum(-1),
        expected_position=(p * j).sum(-1),
        mean_distance=dense.windowed_distance(p),
        waad=dense.windowed_distance(p, WAAD_WINDOW),
        sink_mass=p[..., :1].sum(-1),
        argmax=p.argmax(-1),
        col_sum=p.sum(-2),
        fai_sum=dense.fai_window_sums(p, *FAI_WINDOW)[0],
    )


def _cuda_timing(once, case: str, target_s: float = 0.4) -> dict:
    """Median of CUDA-event timings (3-50 repeats, ~``target_s`` in all), peak allocated
    memory of one call, and for the triton case each pass's kernel time (torch profiler)."""
    import statistics

    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def timed() -> float:
        start.record()
        once()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    first = timed()
    times = [timed() for _ in range(int(min(50, max(3, target_s / max(first, 1e-6)))))]
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    once()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    row = {
        "seconds": statistics.median(times),
        "repeats": len(times),
        "peak_gb": peak / GB,
        "above_inputs_gb": (peak - base) / GB,
    }
    if case in ("triton", "sdpa", *FUSED_CASES):
        row.update(_kernel_times(once, case))
    return row


def _kernel_times(once, case: str) -> dict:
    """GPU kernels of one profiled call and their times; for triton each pass's time and the
    configs the autotuner chose (for SDPA the kernel names say which backend ran)."""
    import torch

    out: dict = {}
    try:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            once()
            torch.cuda.synchronize()
        kernels = {}
        for ev in prof.key_averages():
            us = getattr(ev, "device_time_total", None) or getattr(ev, "cuda_time_total", 0)
            if us:
                kernels[ev.key[:80]] = us / 1e6
        out["kernels_s"] = kernels
        for name, key in (("_row_stats", "pass1_s"), ("_col_stats", "pass2_s"),
                          ("_fused_stats", "fused_s")):  # fmt: skip
            out[key] = sum(t for k, t in kernels.items() if name in k) or None
    except Exception as e:  # noqa: BLE001 - the split is extra information, not the result
        out["profiler_error"] = f"{type(e).__name__}: {e}"[:120]
    if case == "triton":
        from interp.kernels import attention_stats as tk

        for kernel, key in ((tk._row_stats, "pass1_config"), (tk._col_stats, "pass2_config")):
            best = getattr(kernel, "best_config", None)
            out[key] = str(best) if best is not None else None
    if case.startswith("fused"):
        from interp.kernels import fused_stats

        best = getattr(fused_stats._fused_stats, "best_config", None)
        out["fused_config"] = str(best) if best is not None else None
    return out


def _rss_gb() -> float:
    """Current resident memory of this process (after imports), in GB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / GB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ns", type=int, nargs="*", default=None)
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    ap.add_argument("--quick", action="store_true", help="n = 512 and 2048 only")
    ap.add_argument("--plot", type=Path, help="draw a results JSON (GPU) as a PNG beside it")
    ap.add_argument("--before", metavar="REV", help="also time REV's torch backend (the before)")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--shape", default="smollm2", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.plot:
        print(f"wrote {plot(args.plot)}")
        return
    if args.case:  # child process
        print(json.dumps(run_case(args.case, args.n, args.shape, args.device)))
        return

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device == "cuda"
    ns = args.ns or (
        [512, 2048]
        if args.quick
        else [2048, 8192, 16384, 32768, 131072]
        if cuda
        else [512, 2048, 8192]
    )
    per_layer = ["dense", "torch", "sdpa"] + (["triton", *FUSED_CASES] if cuda else [])
    shapes = ["smollm2", "h32kv8d128"] if cuda else ["smollm2"]
    mem_limit = (
        torch.cuda.get_device_properties(0).total_memory / GB * 0.9
        if cuda
        else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB * 0.6
    )
    cases = [(c, n, s) for s in shapes for n in ns for c in per_layer]
    if args.before:  # the torch backend of an earlier revision, beside today's
        cases += [(f"torch@{args.before}", n, "smollm2") for n in ns]
    import importlib.util

    if importlib.util.find_spec("transformer_lens"):  # whole-model cases need the full install
        whole = ("tl_cache", "tl_stats", "model_stats")
        if args.before:
            whole += (f"model_stats@{args.before}",)
        cases += [(c, n, "smollm2") for n in ns for c in whole if n <= 8192]
    rows = []
    for case, n, shape in cases:
        heads = SHAPES[shape][0]
        need = _estimate_gb(case, n, heads)
        row = {"case": case, "n": n, "shape": shape, "device": device}
        if need > mem_limit:
            row.update(skipped=f"needs ~{need:.0f} GB", seconds=None, peak_gb=None)
        elif cuda and case == "torch" and n > TORCH_MAX_N_CUDA:
            row.update(skipped=f"not run above n {TORCH_MAX_N_CUDA}", seconds=None, peak_gb=None)
        elif cuda:  # in-process: CUDA peak memory is reset per case, no subprocess needed
            row.update(_run_cuda_case(case, n, shape))
        else:
            cmd = [sys.executable, __file__, "--case", case, "--n", str(n), "--shape", shape]
            cmd += ["--device", device]
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode:
                tail = (p.stderr.strip().splitlines() or ["?"])[-1]
                row.update(skipped=f"failed: {tail[:80]}", seconds=None, peak_gb=None)
            else:
                row.update(json.loads(p.stdout.strip().splitlines()[-1]))
        rows.append(row)
        shown = row.get("skipped") or f"{row['seconds']:.3f} s, {row['peak_gb']:.2f} GB"
        print(f"{case:12s} n={n:<7d} {shape:8s} {shown}", flush=True)
        if cuda:
            _derive(rows, per_layer)
            _write(rows, device)
    _derive(rows, per_layer)
    _print_table(rows)
    print(f"wrote {_write(rows, device)}")


def _derive(rows: list[dict], per_layer: list[str]) -> None:
    """Ratios to SDPA and to dense at the same (n, shape), TFLOP/s-equivalent, and for the
    whole-model cases how many times faster than ``tl_stats`` (the peer's same answer)."""
    peer = {r["n"]: r["seconds"] for r in rows if r["case"] == "tl_stats"}
    for r in rows:
        p = peer.get(r["n"]) if r["case"].startswith(("model_stats", "tl_")) else None
        r["tl_stats_x_faster"] = p / r["seconds"] if p and r["seconds"] else None
    per_layer = [*per_layer, *(r["case"] for r in rows if r["case"].startswith("torch@"))]
    base = {(r["n"], r["shape"]): r["seconds"] for r in rows if r["case"] == "sdpa"}
    dense = {(r["n"], r["shape"]): r["seconds"] for r in rows if r["case"] == "dense"}
    for r in rows:  # per-layer cases only: the whole-model ones run 30 layers and an MLP
        key = (r["n"], r["shape"])
        b = base.get(key) if r["case"] in per_layer else None
        r["x_sdpa"] = r["seconds"] / b if r["seconds"] and b else None
        dn = dense.get(key) if r["case"] in per_layer else None
        r["dense_x_faster"] = dn / r["seconds"] if r["seconds"] and dn else None
        lse_only = {(x["n"], x["shape"]): x["seconds"] for x in rows if x["case"] == "sdpa_lse"}
        if r["case"] in ("fused", "fused_det") and r["seconds"] and b and lse_only.get(key):
            r["added_x_sdpa"] = (r["seconds"] - lse_only[key]) / b  # target <= 1.0
        hq, _, d = SHAPES[r["shape"]]
        # TFLOP/s-equivalent: the FLOPs of one causal SDPA forward (QK^T and PV, half the
        # matrix) at this shape, divided by this case's time; comparable across cases
        flops = 4 * hq * r["n"] * r["n"] * d / 2
        r["tflops_equiv"] = (
            flops / r["seconds"] / 1e12 if r["seconds"] and r["case"] in per_layer else None
        )


def _write(rows: list[dict], device: str) -> Path:
    """Atomic JSON write (after every case too, so a run cut short keeps what it measured)."""
    import torch

    cuda = device == "cuda"
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"attention_stats_{_gpu_slug() if cuda else device}.json"
    meta = {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count()}
    if cuda:
        meta["gpu"] = torch.cuda.get_device_name(0)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    tmp.replace(out)
    return out


def plot(path: Path) -> Path:
    """Time relative to one SDPA forward vs context length, per shape: both passes, pass 1 and
    pass 2 (kernel times), with the 1.5x target; PNG next to the JSON."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(path.read_text())
    rows = [r for r in data["rows"] if r["case"] == "triton" and r.get("x_sdpa")]
    shapes = sorted({r["shape"] for r in rows})
    fig, axes = plt.subplots(1, len(shapes), figsize=(5 * len(shapes), 3.6), sharey=True)
    for ax, shape in zip(list(getattr(axes, "flat", [axes])), shapes, strict=True):
        mine = sorted((r for r in rows if r["shape"] == shape), key=lambda r: r["n"])
        ns = [r["n"] for r in mine]
        sdpa = [r["seconds"] / r["x_sdpa"] for r in mine]
        ax.plot(ns, [r["x_sdpa"] for r in mine], "o-", label="both passes (wall)")
        for key, style in (("pass1_s", "s--"), ("pass2_s", "^--")):
            if all(r.get(key) for r in mine):
                vals = [r[key] / t for r, t in zip(mine, sdpa, strict=True)]
                ax.plot(ns, vals, style, label=key.replace("_s", " (kernel)"))
        ax.axhline(1.5, color="grey", lw=0.8, ls=":", label="target 1.5x")
        hq, hkv, d = SHAPES[shape]
        ax.set(xscale="log", yscale="log", xlabel="context length n",
               title=f"{hq} q / {hkv} kv heads, d {d}")  # fmt: skip
        ax.grid(alpha=0.3)
    first = list(getattr(axes, "flat", [axes]))[0]
    first.set_ylabel("time / one SDPA causal forward")
    first.legend(fontsize=8)
    fig.suptitle(f"attention statistics, Triton, bf16 on {data['meta'].get('gpu', '?')}")
    fig.tight_layout()
    out = path.with_suffix(".png")
    fig.savefig(out, dpi=120)
    return out


def _passes(r: dict) -> str:
    if not (r.get("pass1_s") and r.get("pass2_s") and r.get("x_sdpa")):
        return ""
    sdpa = r["seconds"] / r["x_sdpa"]
    return f"{r['pass1_s'] / sdpa:.2f} / {r['pass2_s'] / sdpa:.2f}"


def _print_table(rows: list[dict]) -> None:
    """A plain-text table (no rich: the GPU image has only torch, triton and numpy)."""
    head = ("case", "shape", "n", "seconds", "x SDPA", "dense/this", "TFLOP/s eq", "peak GB",
            "pass 1 / 2 (x SDPA)", "added x SDPA", "tl_stats/this")  # fmt: skip
    lines = [head]
    for r in rows:
        lines.append((
            r["case"], r["shape"], str(r["n"]),
            f"{r['seconds']:.4f}" if r["seconds"] else r.get("skipped", ""),
            f"{r['x_sdpa']:.2f}" if r.get("x_sdpa") else "",
            f"{r['dense_x_faster']:.1f}" if r.get("dense_x_faster") else "",
            f"{r['tflops_equiv']:.2f}" if r.get("tflops_equiv") else "",
            f"{r['peak_gb']:.2f}" if r["peak_gb"] else "",
            _passes(r),
            f"{r['added_x_sdpa']:.2f}" if r.get("added_x_sdpa") is not None else "",
            f"{r['tl_stats_x_faster']:.2f}" if r.get("tl_stats_x_faster") else "",
        ))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for line in lines:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))


if __name__ == "__main__":
    main()
