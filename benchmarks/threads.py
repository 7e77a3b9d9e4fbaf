"""Benchmark: torch thread count for loops of small ops (interp.threads.threads_for).

The discrete-code SAE's full-batch training loop (``interp.sae.train_sae``, 100 epochs) on
random data of the sizes the circuit and family analyses use (small) and one well above
``SMALL_OP_MACS`` (large), each at 1 thread and at the machine's thread count, with the
machine idle and with a busy neighbour (a second process multiplying matrices on every core).
Prints a table and writes benchmarks/results/threads.json.

Usage: .venv/bin/python benchmarks/threads.py
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

import torch

from interp.report import write_json

RESULTS = Path(__file__).parent / "results"
CASES = {"small (40 x 64 -> 200)": (40, 64, 200), "large (1024 x 256 -> 1024)": (1024, 256, 1024)}
EPOCHS = 100


def _busy(stop) -> None:
    torch.set_num_threads(os.cpu_count() or 2)
    a = torch.randn(512, 512)
    while not stop.is_set():
        a @ a


def _train(n: int, d: int, d_sae: int, threads: int) -> float:
    from interp.sae.model import DiscreteCodeSAE, sae_loss

    torch.manual_seed(0)
    x = torch.randn(n, d)
    sae = DiscreteCodeSAE(d, d_sae, "official")
    opt = torch.optim.Adam(sae.parameters(), lr=1e-3)
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    for _ in range(EPOCHS):
        f, x_hat = sae(x)
        loss = sae_loss(x, f, x_hat, 0.02)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sae.normalise()
    return time.perf_counter() - t0


def main() -> None:
    from interp.threads import SMALL_OP_MACS

    cores = os.cpu_count() or 2
    rows = []
    for load in ("idle", "busy neighbour"):
        ctx = mp.get_context("spawn")  # a forked child of a process that ran torch may hang
        stop = ctx.Event()
        proc = ctx.Process(target=_busy, args=(stop,)) if load != "idle" else None
        if proc:
            proc.start()
            time.sleep(1.0)
        for name, (n, d, d_sae) in CASES.items():
            one = _train(n, d, d_sae, 1)
            many = _train(n, d, d_sae, cores)
            macs = n * d * d_sae
            rows.append({"load": load, "case": name, "macs_per_op": macs,
                         "one_thread_s": one, f"{cores}_threads_s": many,
                         "one_thread_faster_by": many / one,
                         "threads_for_picks": 1 if macs < SMALL_OP_MACS else cores})  # fmt: skip
        if proc:
            stop.set()
            proc.join()
    print(f"SAE training, {EPOCHS} epochs, seconds (1 thread / {cores} threads)")
    for r in rows:
        print(f"{r['load']:<15} {r['case']:<28} {r['one_thread_s']:7.2f} / "
              f"{r[f'{cores}_threads_s']:7.2f}  1 thread {r['one_thread_faster_by']:.2f}x; "
              f"threads_for picks {r['threads_for_picks']}")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "threads.json"
    write_json({"epochs": EPOCHS, "cores": cores, "rows": rows}, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
