"""A short concurrent load on the dashboard's callbacks (loopback, bounded in time).

Latency is not asserted (it belongs in benchmarks/dashboard_load.py); correctness under
concurrency is: no request fails, every view answers valid input without an error message,
and the input limits hold while the server is busy.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from dashboards.analysis import MAX_CHARS
from dashboards.serve import serve_in_thread

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "dashboard_load.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_dashboard_load", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_concurrent_users_get_no_errors_and_limits_hold(bench):
    server, state, url = serve_in_thread("tiny")
    try:
        bench.wait_ready(url, None, 120)
        result = bench.run_load(url, users=6, seconds=4.0)
    finally:
        server.close()
    assert result["errors"] == 0, result["error_examples"]
    assert set(result["per_view"]) == {"atlas", "scatter", "attention", "geometry", "ablation"}
    assert result["requests"] >= 6
    limits = result["limits"]
    assert limits["too_long_prompt_status"] == 200
    assert f"at most {MAX_CHARS}" in limits["too_long_prompt_message"]
    assert "does not exist" in limits["unknown_head_message"]
    assert limits["oversized_request_status"] == 413


def test_an_oversized_upload_is_refused_before_it_arrives():
    """The server itself refuses a body over the limit from its Content-Length: the client
    gets 413 after sending a few bytes of a 100 MiB announcement (no model needed)."""
    import http.client
    import time

    from dashboards.app import MAX_REQUEST_BYTES

    server, _, url = serve_in_thread("tiny", load=False)
    try:
        host, port = url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        t0 = time.perf_counter()
        conn.putrequest("POST", "/_dash-update-component")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(100 * 2**20))
        conn.endheaders()
        conn.send(b"{" + b" " * 1024)  # a sliver of the announced body
        status = conn.getresponse().status
        seconds = time.perf_counter() - t0
        conn.close()
    finally:
        server.close()
    assert status == 413 and MAX_REQUEST_BYTES < 100 * 2**20
    assert seconds < 5  # answered without waiting for 100 MiB that never comes


def test_loopback_server_answers_only_loopback_host_names():
    """DNS rebinding: a page on another site that resolves its own name to 127.0.0.1 sends
    its name in the Host header; the loopback server refuses it (421), serves 127.0.0.1."""
    import http.client

    server, _, url = serve_in_thread("tiny", load=False)
    try:
        host, port = url.removeprefix("http://").split(":")
        statuses = {}
        for name in ("127.0.0.1", "localhost", "evil.example"):
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            conn.request("GET", "/", headers={"Host": f"{name}:{port}"})
            statuses[name] = conn.getresponse().status
            conn.close()
    finally:
        server.close()
    assert statuses == {"127.0.0.1": 200, "localhost": 200, "evil.example": 421}


def test_roots_limit_what_the_page_may_load(tmp_path):
    """Bound beyond loopback, the page loads model and run folders only under the roots."""
    from dashboards.serve import make_server
    from dashboards.state import AppState
    from interp.errors import InterpError

    state = AppState(roots=[tmp_path])
    state.check_allowed("tiny", None)  # a known name is not a path
    state.check_allowed(str(tmp_path / "model"), str(tmp_path / "runs" / "a"))
    for model, run in (("/etc", None), ("tiny", "/tmp/../etc"), (str(tmp_path / ".." / "x"), None)):
        with pytest.raises(InterpError, match="outside the folders this server may read"):
            state.check_allowed(model, run)
    # a folder inside the root whose file links outside it is refused too
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "run" / "detectors").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.parquet").write_text("x")
    (root / "run" / "detectors" / "sink.parquet").symlink_to(outside / "secret.parquet")
    inside = AppState(roots=[root])
    with pytest.raises(InterpError, match=r"holds detectors/sink.parquet, a link to a file"):
        inside.check_allowed("tiny", str(root / "run"))
    (root / "run" / "detectors" / "sink.parquet").unlink()
    inside.check_allowed("tiny", str(root / "run"))
    server, wide = make_server("tiny", host="0.0.0.0", port=0, load=False)
    server.close()
    assert wide.roots is not None  # beyond loopback: the working folder by default
    server, local = make_server("tiny", port=0, load=False)
    server.close()
    assert local.roots is None


def test_two_users_see_their_own_models(bench, tmp_path):
    """Per-page sessions: user A loads a 3-layer model from its page, user B keeps the server's
    2-layer tiny model; each page's callbacks answer for its own model, and B's page is not
    switched by A's load."""
    from interp.models.tiny import tiny_llama, tiny_tokenizer

    folder = tmp_path / "three_layers"
    tiny_llama(n_layers=3).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    server, state, url = serve_in_thread("tiny")
    try:
        bench.wait_ready(url, None, 120)
        client = bench.Client(url)
        started = client.call(
            "load-status.children",
            {"model-name.value": str(folder), "run-dir.value": "", "client-id.data": "A"},
            "load-btn.n_clicks",
        )
        assert started.status_code == 200
        import time

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = client.http.get(f"{url}/api/status", params={"client": "A"}).json()
            if not status["busy"] and status["stage"].startswith(("ready", "failed")):
                break
            time.sleep(0.2)
        assert status["model"] == str(folder) and not status["error"], status

        def layers(client_id):
            resp = client.call("layer-dd.options", {"session-key.data": "k",
                                                    "client-id.data": client_id},
                               "session-key.data")  # fmt: skip
            return len(resp.json()["response"]["layer-dd"]["options"])

        assert layers("A") == 3 and layers("B") == 2 and layers(None) == 2
        assert client.http.get(f"{url}/api/status").json()["model"] == "tiny"
        assert {s.name for s in state.sessions.values()} == {"tiny", str(folder)}
    finally:
        server.close()


def test_sessions_stay_bounded_over_many_pages(tiny, monkeypatch):
    """200 pages each loading a model: at most MAX_SESSIONS page sessions (plus the server's)
    and as many load statuses are kept, the least recently used dropped first; a page idle
    past SESSION_IDLE_S loses its session and sees the server's again."""
    from dashboards.state import AppState

    monkeypatch.setattr("dashboards.state.compute_scores", lambda bridge, step, keep: _scores())
    state = AppState(loader=lambda name: tiny)
    state.load("tiny")  # the server's own session
    for i in range(200):
        state.load("tiny", client=f"page-{i}")
        if i == 150:
            assert state.session_for("page-145") is not None  # read: now the most recent
    kept = [k for k in state.sessions if k]
    assert len(kept) == AppState.MAX_SESSIONS and "page-199" in kept
    assert "page-145" not in kept  # 49 loads later it is gone again
    assert len(state._statuses) <= AppState.MAX_SESSIONS + 1
    assert state.session_for("page-0") is state.session  # dropped: falls back to the server's
    state._used["page-199"] -= AppState.SESSION_IDLE_S + 1
    state.load("tiny", client="page-200")
    assert "page-199" not in state.sessions and "" in state.sessions


def _scores():
    import pandas as pd

    return pd.DataFrame({"layer": [0], "head": [0]})


def test_cheap_views_answer_while_heavy_views_wait_for_the_model(bench):
    """30 attention-map requests from 30 pages wait for the model (its lock held by the test):
    the server has threads to spare for them (64) and the session tables have their own lock,
    so the head atlas still answers at once. Released, every one finishes without an error."""
    import concurrent.futures as cf
    import time

    server, state, url = serve_in_thread("tiny")
    try:
        bench.wait_ready(url, None, 120)
        client = bench.Client(url)
        values = {"layer-dd.value": 1, "head-dd.value": 2, "prompt.value": "the cat sat"}
        with cf.ThreadPoolExecutor(30) as pool:
            with state.lock:  # the model is busy for as long as the test holds this
                heavy = [
                    pool.submit(bench.Client(url).call, "attn-map.figure",
                                {**values, "head-dd.value": i % 4, "client-id.data": f"p{i}"},
                                "analyse-btn.n_clicks")
                    for i in range(30)
                ]  # fmt: skip
                time.sleep(1.0)  # every heavy request has arrived and waits for the model
                assert not any(f.done() for f in heavy)
                t0 = time.perf_counter()
                atlas = client.call("atlas.figure", {"atlas-score.value": "sink"},
                                    "atlas-score.value")  # fmt: skip
                cheap_s = time.perf_counter() - t0
            results = [f.result(timeout=120) for f in heavy]
        assert atlas.status_code == 200 and cheap_s < 2.0, cheap_s
        for r in results:
            assert r.status_code == 200 and not bench._error_text(r, "attn-error")
            assert r.json()["response"]["attn-map"]["figure"]["data"]
    finally:
        server.close()


def test_identical_requests_from_two_pages_each_get_their_answer():
    """Two background jobs with the same arguments at the same time (two pages asking for the
    same view) each get their own result slot; neither comes back empty."""
    import threading
    import time

    from dashboards.jobs import ThreadJobManager

    manager = ThreadJobManager(workers=2)
    gate = threading.Event()

    def view(x):
        gate.wait(10)
        return x * 2

    manager.register("view", view, progress=False)
    keys = [manager.build_cache_key(view, [3], [], None) for _ in range(2)]
    assert keys[0] != keys[1]
    jobs = [manager.call_job_fn(k, manager.func_registry["view"], [3], {}) for k in keys]
    assert all(manager.job_running(j) for j in jobs) and not manager.result_ready(keys[0])
    gate.set()
    for k, j in zip(keys, jobs, strict=True):
        deadline = time.monotonic() + 10
        while not manager.result_ready(k) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert manager.get_result(k, j) == 6
        assert not manager.job_running(j)


def test_a_job_that_finishes_between_two_checks_still_delivers_its_result():
    """Dash asks get_result, then job_running; a job finishing in between must count as
    running (its result unread), or Dash takes it for cancelled and the page never sees it."""
    import time

    from dashboards.jobs import ThreadJobManager

    manager = ThreadJobManager(workers=1)
    manager.register("quick", lambda: 7, progress=False)
    key = manager.build_cache_key(lambda: 7, [], [], None)
    job = manager.call_job_fn(key, manager.func_registry["quick"], [], {})
    deadline = time.monotonic() + 10
    while not manager.result_ready(key) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # the future is done now, the result not yet read
    assert manager.job_running(job)
    assert manager.get_result(key, job) == 7
    assert not manager.job_running(job)
