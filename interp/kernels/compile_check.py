"""Compile every Triton kernel of the package with the real compiler, no GPU needed.

Triton's CPU interpreter accepts code the GPU compiler refuses (a kernel once shipped that ran
in every test and failed to compile on every GPU), so this builds PTX and a cubin for real
targets: ``triton.compile(ASTSource(...), target=GPUTarget("cuda", arch, 32))``.

Default: for each kernel and target, every (dtype, head dim) pair the launcher can produce, the
(causal, key mask) flags, the alignment specialisation (pointers, strides and lengths multiples
of 16 or not) and the autotune configs cycling over them so that each flag pair, alignment and
config is built several times. ``--all``: the full product (every config x flags x dtype x
head dim x alignment x query heads per program; see the count it prints; ~1-2 s each).

Usage: TRITON_INTERPRET=0 python -m interp.kernels.compile_check [--arch 80 90] [--all] [--jobs 2]
(exit 1 and the failing variants on stderr when any fails).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

FLAGS = ((True, False), (True, True), (False, False), (False, True))  # (causal, key mask)


def _variants(full: bool) -> list[tuple[str, object, dict, dict, dict, dict]]:
    from interp.kernels import attention_stats, fused_stats

    everything = [*attention_stats.compile_variants(), *fused_stats.compile_variants()]
    if full:
        return everything
    groups: dict[str, list] = {}  # (kernel, dtype, head dim) -> its variants
    for v in everything:
        groups.setdefault("-".join(v[0].split("-")[:3]), []).append(v)
    chosen: list = []
    used: dict[tuple[str, str], int] = {}  # (kernel, config) -> times built so far
    for g, variants in enumerate(groups.values()):
        causal, mask = FLAGS[g % len(FLAGS)]
        align = ("a16", "a1")[(g // len(FLAGS)) % 2]
        flag = f"{'causal' if causal else 'bidir'}-{'mask' if mask else 'nomask'}-{align}"
        matching = [v for v in variants if "-".join(v[0].split("-")[3:6]) == flag]
        # the least-built config first, so every config of each kernel is built several times
        pick = min(matching, key=lambda v: used.get((v[0][:3], v[0].split("-")[-1]), 0))
        key = (pick[0][:3], pick[0].split("-")[-1])
        used[key] = used.get(key, 0) + 1
        chosen.append(pick)
    return chosen


def _compile(job: tuple[int, int, bool]) -> tuple[str, int, float, str]:
    index, arch, full = job
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    label, fn, sig, const, opts, attrs = _variants(full)[index]
    t0 = time.perf_counter()
    try:
        compiled = triton.compile(
            ASTSource(fn=fn, signature=sig, constexprs=const, attrs=attrs),
            target=GPUTarget("cuda", arch, 32),
            options=opts,
        )
        if not compiled.asm.get("cubin"):
            raise RuntimeError("no cubin produced")
        err = ""
    except Exception as e:  # noqa: BLE001 - every failure is reported with its variant
        err = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else e}"
    return label, arch, time.perf_counter() - t0, err


def check(archs: list[int], full: bool = False, jobs: int = 2, verbose: bool = True) -> list[str]:
    """Compile the variants for each arch; returns the failures ("label sm_XX: error")."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise SystemExit("run with TRITON_INTERPRET=0: the interpreter cannot compile kernels")
    n = len(_variants(full))
    work = [(i, arch, full) for arch in archs for i in range(n)]
    failures = []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for label, arch, seconds, err in pool.map(_compile, work):
            if err:
                failures.append(f"{label} sm_{arch}: {err}")
            if verbose:
                print(f"{'FAIL' if err else 'ok  '} sm_{arch} {label} {seconds:.1f} s", flush=True)
    return failures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", type=int, nargs="+", default=[80, 90])
    ap.add_argument("--all", action="store_true", help="every config x flags x dtype x head dim")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args()
    os.environ.setdefault("TRITON_INTERPRET", "0")
    t0 = time.perf_counter()
    failures = check(args.arch, args.all, args.jobs)
    print(f"{len(failures)} failed; {time.perf_counter() - t0:.0f} s", flush=True)
    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
