"""Running shards: in-process (default) or on Ray (``interp[distributed]``), never home-made.

Both engines call ``ShardRunner.run`` on the same shards and hand the tables to the driver,
which writes them (``store.write_shard``): workers need no shared file system, only the model
(a known name whose package is installed on every node, or a folder every node can read).

Failures: a shard that raises is tried again up to ``retries`` times (not for ``InputError``,
which bad input raises the same way every time); then its error is written
to ``shards/<id>.failed.json`` and the sweep goes on with the other shards. On Ray a worker
process that dies is restarted by Ray (``max_restarts``) and its shard resubmitted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, no_type_check

from tqdm.auto import tqdm

from interp.errors import InputError
from interp.sweep.shards import Shard, ShardRunner

#: called by the engines for every finished shard: (shard, tables or None, info)
Sink = Callable[[Shard, dict | None, dict], None]


def _format_error(e: BaseException) -> str:
    cause = getattr(e, "cause", None)  # RayTaskError wraps the worker's exception
    e = cause if isinstance(cause, BaseException) else e
    return f"{type(e).__name__}: {e}"


def _retryable(e: BaseException) -> bool:
    """Bad input (``InputError``: a prompt too long for the model, a task the tokenizer cannot
    build) fails the same way every time; anything else (out of memory, a lost worker) may not."""
    cause = getattr(e, "cause", None)
    return not isinstance(cause if isinstance(cause, BaseException) else e, InputError)


def _by_model(shards: Sequence[Shard]) -> dict[str, list[Shard]]:
    out: dict[str, list[Shard]] = {}
    for s in shards:
        out.setdefault(s.model, []).append(s)
    return out


def run_local(
    shards: Sequence[Shard], retries: int, sink: Sink, *, threads: int | None = None,
    progress: bool = True, throttle: float = 0.0,
) -> None:  # fmt: skip
    """In this process: each model loaded once, its shards one after another."""
    bar = tqdm(total=len(shards), desc="sweep shards (in-process)", disable=not progress)
    for model, todo in _by_model(shards).items():
        runner = None
        try:
            runner = ShardRunner(model, threads)
        except Exception as e:  # a model that cannot load fails each of its shards
            for s in todo:
                sink(s, None, {"error": _format_error(e), "attempts": 1})
                bar.update()
            continue
        for shard in todo:
            for attempt in range(1, retries + 2):
                t0 = time.perf_counter()
                try:
                    tables = runner.run(shard)
                except Exception as e:
                    if attempt > retries or not _retryable(e):
                        sink(shard, None, {"error": _format_error(e), "attempts": attempt})
                        break
                    continue
                info = {"seconds": round(time.perf_counter() - t0, 3), "attempts": attempt,
                        "engine": "local"}  # fmt: skip
                sink(shard, tables, info)
                break
            bar.update()
            if throttle:
                time.sleep(throttle)
    bar.close()


def run_ray(
    shards: Sequence[Shard], retries: int, sink: Sink, *, workers: int = 2,
    gpus_per_worker: float | str = "auto", address: str | None = None, progress: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """On a Ray cluster (``address``) or a local one started here with ``workers`` CPUs.

    Each model gets ``workers`` actors that load it once; shards go to whichever actor is free.
    """
    try:
        import ray
    except ImportError as e:
        raise InputError(
            "the Ray engine needs the distributed extra: pip install 'interp[distributed]'"
        ) from e
    started_here = not ray.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address:
            if address != "auto":  # fail in seconds, not after Ray's minutes of retries
                from interp.checks import reachable

                reachable(address.removeprefix("ray://"))
            kwargs["address"] = address
        else:
            kwargs["num_cpus"] = workers
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:  # e.g. "auto" with no cluster
            raise InputError(
                f"could not connect to a Ray cluster at {address or 'a new local one'}: "
                f"{str(e).splitlines()[0][:200] if str(e) else type(e).__name__}"
            ) from None
    cluster = {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}
    if gpus_per_worker == "auto":  # one GPU per actor, or an equal share when fewer GPUs
        gpus = min(1.0, cluster.get("GPU", 0.0) / workers)
    else:
        gpus = float(gpus_per_worker)
    cluster["gpus_per_worker"] = gpus

    @ray.remote(max_restarts=2, max_task_retries=0)
    @no_type_check  # the jaxtyping test hook must not wrap a Ray actor class
    class Worker:
        def __init__(self, model: str, gpu: bool) -> None:
            import torch

            device = "cuda" if gpu and torch.cuda.is_available() else "cpu"
            self.runner = ShardRunner(model, threads=1, device=device)

        def run(self, shard: Shard) -> tuple[dict, float]:
            t0 = time.perf_counter()
            tables = self.runner.run(shard)
            return tables, time.perf_counter() - t0

    bar = tqdm(total=len(shards), desc=f"sweep shards (ray, {workers} workers)",
               disable=not progress)  # fmt: skip
    try:
        for model, todo in _by_model(shards).items():
            actors = [
                Worker.options(num_cpus=1, num_gpus=gpus).remote(  # type: ignore[attr-defined]
                    model, gpus > 0
                )
                for _ in range(workers)
            ]
            queue = list(todo)
            attempts: dict[str, int] = {}
            running: dict[Any, tuple[Shard, Any]] = {}
            free = list(actors)
            while queue or running:
                while queue and free:
                    shard, actor = queue.pop(0), free.pop(0)
                    attempts[shard.id] = attempts.get(shard.id, 0) + 1
                    running[actor.run.remote(shard)] = (shard, actor)
                done, _ = ray.wait(list(running), num_returns=1)
                ref = done[0]
                shard, actor = running.pop(ref)
                free.append(actor)
                try:
                    tables, seconds = ray.get(ref)
                except Exception as e:  # RayTaskError, RayActorError, ...
                    if attempts[shard.id] <= retries and _retryable(e):
                        queue.append(shard)
                        continue
                    sink(shard, None, {"error": _format_error(e), "attempts": attempts[shard.id]})
                    bar.update()
                    continue
                sink(shard, tables, {"seconds": round(seconds, 3),
                                     "attempts": attempts[shard.id], "engine": "ray"})  # fmt: skip
                bar.update()
            for actor in actors:
                ray.kill(actor)
    finally:
        bar.close()
        if started_here:
            ray.shutdown()
    return cluster
