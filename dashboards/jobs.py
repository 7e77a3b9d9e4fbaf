"""Long button-started dashboard views run as Dash background callbacks on a small thread pool.

Patching, the comparison of two prompts and the long document are background callbacks (Dash's
own protocol: the page gets a job handle at once and polls for the result), so they hold a
server thread only for the few milliseconds of each request while their work runs on
``ThreadJobManager``'s bounded pool. The views of the picked head stay ordinary callbacks
(docs/design.md, "Many users at once").

Dash ships two managers: diskcache (a process per job: each would need its own copy of the
model) and Celery (a broker). The model lives in this process, so this manager keeps jobs in
it: a ``ThreadPoolExecutor`` with ``WORKERS`` threads (model work is serialized by the model
lock anyway) and an in-memory result store whose unread entries expire after ``TTL_S``.
"""

from __future__ import annotations

import itertools
import threading
import time
import traceback
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import copy_context
from typing import Any

from dash._callback_context import context_value
from dash._utils import AttributeDict
from dash.background_callback._proxy_set_props import ProxySetProps
from dash.background_callback.managers import BaseBackgroundCallbackManager
from dash.exceptions import PreventUpdate

WORKERS = 2
TTL_S = 600.0  # an unread result (the page was closed) is dropped after this long
INTERVAL_MS = 250  # how often a page polls a running job


class ThreadJobManager(BaseBackgroundCallbackManager):
    """Background callbacks on a bounded thread pool in this process (module docstring)."""

    def __init__(self, workers: int = WORKERS) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="interp-job")
        self._lock = threading.Lock()
        self._store: dict[str, tuple[float, Any]] = {}
        self._jobs: dict[int, tuple[Future, str]] = {}  # job -> (its future, its result key)
        self._ids = itertools.count(1)
        self._secret: bytes | None = None
        super().__init__(cache_by=None)

    # -- the store -----------------------------------------------------------------------------
    def _put(self, key: str, value: Any) -> None:
        with self._lock:
            self._store[key] = (time.monotonic(), value)

    def _pop(self, key: str, default: Any) -> Any:
        with self._lock:
            item = self._store.pop(key, None)
        return default if item is None else item[1]

    def _expire(self) -> None:
        cutoff = time.monotonic() - TTL_S
        with self._lock:
            for key in [k for k, (t, _) in self._store.items() if t < cutoff]:
                del self._store[key]
            for job in [j for j, (f, k) in self._jobs.items() if f.done() and k not in self._store]:
                del self._jobs[job]

    def pending(self) -> int:
        """Jobs submitted and not finished (queued or running)."""
        with self._lock:
            return sum(not f.done() for f, _ in self._jobs.values())

    # -- Dash's manager interface --------------------------------------------------------------
    def build_cache_key(self, fn, args, cache_args_to_ignore, triggered) -> str:
        """Dash's key (a hash of the callback and its arguments) made unique per job: two
        pages asking the same thing at once would otherwise share one result slot, and the
        second reader would get nothing (no result caching is wanted here)."""
        key = super().build_cache_key(fn, args, cache_args_to_ignore, triggered)
        return f"{key}-{uuid.uuid4().hex}"

    def call_job_fn(self, key, job_fn, args, context):
        self._expire()
        job = next(self._ids)
        future = self._pool.submit(job_fn, key, self._make_progress_key(key), args, context)
        with self._lock:
            self._jobs[job] = (future, key)
        return job

    def job_running(self, job) -> bool:
        """Queued or running, or finished with a result not yet read: Dash asks this right
        after an empty ``get_result``, and a job that finished in between must not be taken
        for a cancelled one (its result would never reach the page)."""
        with self._lock:
            entry = self._jobs.get(int(job)) if job is not None else None
            return entry is not None and (not entry[0].done() or entry[1] in self._store)

    def terminate_job(self, job) -> None:
        """A queued job is cancelled; a running one finishes, and its result expires unread
        (a thread cannot be killed)."""
        if job is None:
            return
        with self._lock:
            entry = self._jobs.pop(int(job), None)
        if entry is not None:
            entry[0].cancel()

    def terminate_unhealthy_job(self, job) -> bool:
        return False

    def make_job_fn(self, fn, progress, key=None):
        return _make_job_fn(fn, self, progress)

    def clear_cache_entry(self, key) -> None:
        self._pop(key, None)

    def get_progress(self, key):
        return self._pop(self._make_progress_key(key), None)

    def result_ready(self, key) -> bool:
        with self._lock:
            return key in self._store

    def get_result(self, key, job):
        result = self._pop(key, self.UNDEFINED)
        if result is self.UNDEFINED:
            return self.UNDEFINED
        self._pop(self._make_progress_key(key), None)
        self.terminate_job(job)
        return result

    def get_updated_props(self, key):
        return self._pop(self._make_set_props_key(key), {})

    def get_or_create_signing_secret(self, generate):
        with self._lock:
            if self._secret is None:
                self._secret = generate()
            return self._secret


def _make_job_fn(fn, manager: ThreadJobManager, progress):
    """The job run on the pool: the callback with Dash's context, its value (or its error)
    stored under the job's key, as Dash's diskcache manager does in a subprocess."""

    def job_fn(result_key, progress_key, user_callback_args, context):
        def set_progress(value):
            manager._put(progress_key, value if isinstance(value, list | tuple) else [value])

        def set_props(_id, props):
            manager._put(f"{result_key}-set_props", {_id: props})

        def run():
            c = AttributeDict(**context)
            c.ignore_register_page = False
            c.updated_props = ProxySetProps(set_props)
            context_value.set(c)
            extra = [set_progress] if progress else []
            try:
                if isinstance(user_callback_args, dict):
                    out = fn(*extra, **user_callback_args)
                elif isinstance(user_callback_args, list | tuple):
                    out = fn(*extra, *user_callback_args)
                else:
                    out = fn(*extra, user_callback_args)
            except PreventUpdate:
                out = {"_dash_no_update": "_dash_no_update"}
            except Exception as err:  # noqa: BLE001 - handed to Dash, which reports it
                out = {"background_callback_error": {"msg": str(err),
                                                     "tb": traceback.format_exc()}}  # fmt: skip
            manager._put(result_key, out)

        copy_context().run(run)

    return job_fn


#: the one manager of this process (Dash registers every background callback with every
#: manager instance, so one shared instance keeps that list short)
JOBS = ThreadJobManager()

#: the keyword arguments that make a view's callback a background job
HEAVY = dict(background=True, manager=JOBS, interval=INTERVAL_MS)
