"""Torch thread count for loops of small operations.

Every torch op on a CPU splits its work over ``torch.get_num_threads()`` threads; for ops of a
few hundred thousand multiply-adds the split costs more than it saves, and on a busy 2-core
machine much more (the discrete-code SAE's training loop ran ~3.5x faster on 1 thread than on
2 beside another job). ``threads_for(work)`` uses one thread while such a loop runs and
restores the previous count after; larger work keeps every thread.
``benchmarks/threads.py`` measures both sides of ``SMALL_OP_MACS`` (2 cores, 100 epochs): the
small SAE loop takes 0.16 s on 1 thread vs 0.13 s on 2 when the machine is idle (1 thread
loses 20 %) and 0.19 vs 0.66 s beside a busy process (1 thread 3.5x faster); the large one
keeps both threads (2.7 vs 4.5 s idle).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: below this many multiply-adds in a loop's largest op, one thread is faster
SMALL_OP_MACS = 1 << 22


@contextmanager
def threads_for(macs_per_op: int, threshold: int = SMALL_OP_MACS) -> Iterator[int]:
    """One torch thread while the block runs if its largest op has fewer than ``threshold``
    multiply-adds, else the current count; yields the count in use."""
    before = torch.get_num_threads()
    use = 1 if macs_per_op < threshold else before
    torch.set_num_threads(use)
    try:
        yield use
    finally:
        torch.set_num_threads(before)
