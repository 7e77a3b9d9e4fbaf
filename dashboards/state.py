"""What the dashboard server holds: the loaded model, its head tables, and a loader thread.

Model loads run in a background thread; the page polls ``AppState.status()`` for a progress bar.
Model computations are serialized by one lock (a forward pass is not re-entrant with hooks) and
recent per-prompt results are kept in a small LRU cache.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from transformer_lens.model_bridge import TransformerBridge

from dashboards.analysis import (
    ALL_LAYERS_MAX_TOKENS,
    LayerView,
    all_layer_views,
    check_head,
    check_prompt,
    layer_view,
)
from dashboards.tables import compute_scores, read_results, read_run
from interp.errors import InterpError
from interp.models.info import is_causal

CACHE_SIZE = 64
#: prompts whose every layer is kept (``layer_view``), per session
ALL_LAYERS_KEPT = 4


@dataclass
class Session:
    """One loaded model and the per-head tables shown for it."""

    model: TransformerBridge
    name: str
    scores: pd.DataFrame
    run_dir: str | None
    causal: bool
    cache: OrderedDict = field(default_factory=OrderedDict)
    means: dict | None = None  # per-head mean hook_z (mean ablation), computed on first use
    results: dict = field(default_factory=dict)  # detector name -> DetectorResult (head card)

    @property
    def n_layers(self) -> int:
        return int(self.model.cfg.n_layers)

    @property
    def n_heads(self) -> int:
        return int(self.model.cfg.n_heads)


@dataclass
class LoadStatus:
    stage: str = "idle"
    fraction: float = 0.0
    error: str | None = None
    busy: bool = False
    started: float = 0.0
    seconds: float = 0.0


class AppState:
    """Thread-safe holder of the loaded sessions and each loader's progress, per browser.

    Every page carries a client id (``dashboards.app``); a load from one page makes a session for
    that client only, so two users (or tabs) can look at different models. A page that loaded
    nothing sees the session the server was started with (client ``DEFAULT``). Loaded models are
    shared between sessions (at most ``MAX_MODELS`` kept)."""

    DEFAULT = ""
    MAX_MODELS = 3
    MAX_SESSIONS = 8  # pages with their own load; the least recently used goes first
    SESSION_IDLE_S = 1800.0  # a page's session unused this long is dropped (it reloads)

    def __init__(
        self,
        loader: Callable[[str], TransformerBridge] | None = None,
        roots: list[Path] | None = None,
    ) -> None:
        """``roots``: folders whose model folders and run folders the page may load (None:
        any path; a server reachable beyond loopback gets the working folder by default)."""
        self.roots = None if roots is None else [Path(r).resolve() for r in roots]
        self.lock = threading.RLock()  # serializes model computations
        # the session and model tables: cheap views read them while a model computation holds
        # ``lock`` (one lock for both made the head atlas wait for patching to finish)
        self._books = threading.RLock()
        self._status_lock = threading.Lock()
        self._statuses: dict[str, LoadStatus] = {}
        self.sessions: OrderedDict[str, Session] = OrderedDict()
        self._used: dict[str, float] = {}  # client -> last time its session was read
        self._models: OrderedDict[str, TransformerBridge] = OrderedDict()
        self._loader = loader
        #: client -> (done, total, what) of its running long computation (exact patching)
        self.progress: dict[str, tuple[int, int, str]] = {}

    @property
    def session(self) -> Session | None:
        """The server's own session (the model it was started with)."""
        return self.sessions.get(self.DEFAULT)

    def session_for(self, client: str | None) -> Session | None:
        """The session of ``client``: its own load, else the server's."""
        key = client or self.DEFAULT
        with self._books:
            own = self.sessions.get(key)
            if own is not None:
                self.sessions.move_to_end(key)
                self._used[key] = time.monotonic()
        return own or self.session

    def _add_session(self, client: str, session: Session) -> None:
        """Keep ``session`` for ``client``; drop sessions idle for ``SESSION_IDLE_S`` and the
        least recently used beyond ``MAX_SESSIONS`` (never the server's own), with their load
        statuses, so memory stays bounded however many pages come and go."""
        now = time.monotonic()
        with self._books:
            self.sessions[client] = session
            self.sessions.move_to_end(client)
            self._used[client] = now
            keep = (self.DEFAULT, client)
            idle = [k for k, t in self._used.items()
                    if k not in keep and now - t > self.SESSION_IDLE_S]  # fmt: skip
            for k in idle:
                self._drop(k)
            while len(self.sessions) - (self.DEFAULT in self.sessions) > self.MAX_SESSIONS:
                old = next(k for k in self.sessions if k != self.DEFAULT)
                self._drop(old)

    def _drop(self, client: str) -> None:
        self.sessions.pop(client, None)
        self._used.pop(client, None)
        with self._status_lock:
            status = self._statuses.get(client)
            if status is not None and not status.busy:
                del self._statuses[client]

    # ---- loading -------------------------------------------------------------------------
    def status(self, client: str | None = None) -> LoadStatus:
        with self._status_lock:
            status = self._statuses.get(client or self.DEFAULT)
            if status is None and client:  # nothing loaded from this page: the server's
                status = self._statuses.get(self.DEFAULT)
            return LoadStatus(**vars(status)) if status else LoadStatus()

    def _set(self, client: str, **kw: Any) -> None:
        with self._status_lock:
            status = self._statuses.setdefault(client, LoadStatus())
            for k, v in kw.items():
                setattr(status, k, v)

    def load(self, model: str, run_dir: str | None = None, client: str | None = None) -> None:
        """Load ``model`` (and ``run_dir``'s tables, else compute fast scores) as ``client``'s
        session; blocking."""
        client = client or self.DEFAULT
        self._set(client, busy=True, error=None, stage=f"loading {model}", fraction=0.05,
                  started=time.perf_counter())  # fmt: skip
        try:
            self.check_allowed(model, run_dir)
            bridge = self._model(model)
            if run_dir:
                self._set(client, stage=f"reading {run_dir}", fraction=0.5)
                scores, manifest = read_run(run_dir)
                results = read_results(run_dir)
                run_model = manifest.get("model", {}).get("name")
                if run_model and run_model != str(bridge.cfg.model_name):
                    raise InterpError(
                        f"{run_dir} was written for model {run_model!r}, not "
                        f"{bridge.cfg.model_name!r}; load that model or pick its run folder"
                    )
            else:

                def step(stage: str, fraction: float) -> None:
                    self._set(client, stage=f"computing {stage}", fraction=0.3 + 0.7 * fraction)

                results = {}
                with self.lock:
                    scores = compute_scores(bridge, step, keep=results)
            self._add_session(
                client, Session(bridge, model, scores, run_dir, is_causal(bridge), results=results)
            )
            skipped = scores.attrs.get("skipped") or {}
            note = f" (skipped: {'; '.join(f'{k}: {v}' for k, v in skipped.items())})"
            self._set(client, stage=f"ready: {model}" + (note if skipped else ""), fraction=1.0)
        except InterpError as e:
            self._set(client, error=str(e), stage="failed", fraction=0.0)
        except Exception as e:  # shown in the page; the server keeps serving the last session
            self._set(client, error=f"{type(e).__name__}: {e}", stage="failed", fraction=0.0)
        finally:
            started = self._statuses[client].started
            self._set(client, busy=False, seconds=time.perf_counter() - started)

    def _model(self, name: str) -> TransformerBridge:
        """A loaded model, shared by every session that uses it (LRU of ``MAX_MODELS``)."""
        with self._books:
            if name in self._models:
                self._models.move_to_end(name)
                return self._models[name]
        bridge = self._load_model(name)
        with self._books:
            self._models[name] = bridge
            in_use = {id(s.model) for s in self.sessions.values()}
            while len(self._models) > self.MAX_MODELS:
                old = next((k for k, m in self._models.items() if id(m) not in in_use), None)
                if old is None:
                    break
                del self._models[old]
        return bridge

    def check_allowed(self, model: str, run_dir: str | None) -> None:
        """A model path or run folder outside ``roots`` is refused (known model names are not
        paths and always allowed)."""
        if self.roots is None:
            return
        from interp.known_models import KNOWN_MODELS

        paths = [] if model.strip().lower() in KNOWN_MODELS else [("model", model)]
        paths += [("run folder", run_dir)] if run_dir else []
        roots = ", ".join(map(str, self.roots))
        for what, raw in paths:
            path = Path(raw).expanduser().resolve()
            if not self._inside(path):
                raise InterpError(
                    f"{what} {raw} is outside the folders this server may read ({roots}); "
                    "start it with --root FOLDER to allow more"
                )
            if path.is_dir():  # every file it holds, resolved: a link may point outside
                for i, entry in enumerate(path.rglob("*")):
                    if i >= self.MAX_FILES:
                        raise InterpError(f"{what} {raw} holds more than {self.MAX_FILES} files")
                    if not self._inside(entry.resolve()):
                        raise InterpError(
                            f"{what} {raw} holds {entry.relative_to(path)}, a link to a file "
                            f"outside the folders this server may read ({roots})"
                        )

    MAX_FILES = 10_000  # a model or run folder holds tens of files

    def _inside(self, path: Path) -> bool:
        return any(path.is_relative_to(root) for root in self.roots or [])

    def load_async(self, model: str, run_dir: str | None = None, client: str | None = None) -> bool:
        """Start ``load`` in a thread; False if this client's load is already running."""
        client = client or self.DEFAULT
        with self._status_lock:
            status = self._statuses.setdefault(client, LoadStatus())
            if status.busy:
                return False
            status.busy = True
        threading.Thread(target=self.load, args=(model, run_dir, client), daemon=True).start()
        return True

    def _load_model(self, name: str) -> TransformerBridge:
        if self._loader is not None:
            return self._loader(name)
        from interp.models import load_model

        if not Path(name).exists():
            from interp.models import KNOWN_MODELS

            if name not in KNOWN_MODELS:
                raise InterpError(
                    f"unknown model {name!r}: use one of {', '.join(KNOWN_MODELS)}, a local "
                    "Hugging Face model folder or a .gguf file"
                )
        return load_model(name)

    # ---- cached computations ---------------------------------------------------------------
    def cached(
        self, key: tuple, compute: Callable[[Session], Any], client: str | None = None
    ) -> Any:
        """``compute(session)`` for ``client``'s session under the model lock, memoized by
        ``key`` (LRU)."""
        with self.lock:
            session = self.require(client)
            if key in session.cache:
                session.cache.move_to_end(key)
                return session.cache[key]
            value = compute(session)
            session.cache[key] = value
            if len(session.cache) > CACHE_SIZE:
                session.cache.popitem(last=False)
            return value

    def selected_head(self, client: str | None, layer, head) -> tuple[Session, int, int]:
        """``client``'s session and the picked head, checked (``analysis.check_head``)."""
        session = self.require(client)
        return (session, *check_head(session.model, layer, head))

    def layer_view(self, client: str | None, prompt: str, layer: int) -> LayerView:
        """``prompt`` through ``layer`` of ``client``'s model, cached: the attention map, text,
        layer, comparison and export views share it. A prompt of at most
        ``ALL_LAYERS_MAX_TOKENS`` runs once for every layer (``analysis.all_layer_views``: a
        switch of layer or head then runs nothing); a longer one runs up to ``layer``."""
        session = self.require(client)
        if len(check_prompt(session.model, prompt)) <= ALL_LAYERS_MAX_TOKENS:
            views = self.cached(
                ("all layers", prompt), lambda s: all_layer_views(s.model, prompt), client
            )
            with self.lock:  # every layer of a prompt is ~27 MB at 128 tokens: keep a few
                kept = [k for k in session.cache if k[0] == "all layers"]
                for key in kept[:-ALL_LAYERS_KEPT]:
                    del session.cache[key]
            return views[check_head(session.model, layer, 0)[0]]
        return self.cached(
            ("layer", prompt, layer), lambda s: layer_view(s.model, prompt, layer), client
        )

    def head_view(
        self, client: str | None, prompt: str, layer, head
    ) -> tuple[Session, LayerView, int, int]:
        """The picked head, checked (``selected_head``), and the prompt through its layer
        (``layer_view``): what every view of one head on the prompt starts from."""
        session, layer, head = self.selected_head(client, layer, head)
        return session, self.layer_view(client, prompt, layer), layer, head

    def require(self, client: str | None = None) -> Session:
        session = self.session_for(client)
        if session is None:
            status = self.status(client)
            raise InterpError(
                "no model loaded yet" + (f" ({status.stage})" if status.busy else ": load one")
            )
        return session
