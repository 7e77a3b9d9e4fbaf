"""Load test of the dashboard's callbacks: N simulated users for T seconds, loopback only.

    python benchmarks/dashboard_load.py                      # 20 users x 60 s, SmolLM2-135M
    python benchmarks/dashboard_load.py --model tiny --users 4 --seconds 5

The server runs as a separate process (``interp dashboard``, waitress, 64 threads) on 127.0.0.1;
each user is a thread that loops, bounded in time, over the callbacks a person triggers: the head
atlas, the head scatter, the attention map and geometry of a random head for one of a few prompts,
and an ablation of random heads. Latency is measured per request; an error is any non-200
answer or a view that reports an error for valid input. Then the input limits are checked: a
too-long prompt must come back as a message in the page (HTTP 200), an oversized request as 413.
Prints a table and writes ``benchmarks/results/dashboard_load_<model>.json``.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import requests
import typer

ROOT = Path(__file__).resolve().parents[1]
POLL_S = 0.25  # as the page (dashboards.jobs.INTERVAL_MS)
PROMPTS = [
    "When Mary and John went to the store, John gave a drink to",
    "The war lasted from the year 1732 to the year 17",
    "On the table there is a red pen, a blue cup and a green book. What color is the cup? It is",
    "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return",
    "Alice likes apples. Bob likes bananas. Alice likes",
    "In the beginning God created the heavens and the earth. The earth was without form",
]


def _outputs(spec: str) -> list[dict[str, str]]:
    parts = spec.strip(".").split("...") if spec.startswith("..") else [spec]
    out = []
    for p in parts:
        ident, prop = p.split(".", 1)
        out.append({"id": ident, "property": prop.split("@")[0]})
    return out


class Client:
    """Builds Dash callback requests from the app's ``/_dash-dependencies``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.deps = requests.get(f"{url}/_dash-dependencies", timeout=30).json()
        self.http = requests.Session()

    def dep(self, output: str) -> dict:
        for d in self.deps:
            if output in d["output"]:
                return d
        raise KeyError(output)

    def call(self, output: str, values: dict[str, Any], changed: str, timeout: float = 120):
        d = self.dep(output)

        def fill(items):
            return [{**i, "value": values.get(f"{i['id']}.{i['property']}")} for i in items]

        outs = _outputs(d["output"])
        body = {
            "output": d["output"],
            "outputs": outs if len(outs) > 1 else outs[0],
            "inputs": fill(d["inputs"]),
            "state": fill(d["state"]),
            "changedPropIds": [changed],
        }
        url = f"{self.url}/_dash-update-component"
        resp = self.http.post(url, json=body, timeout=timeout)
        # a background callback (the model views, dashboards/jobs.py) answers at once with a
        # job handle; the client polls with it until the result is there, as Dash's renderer
        handle = _job_handle(resp)
        end = time.monotonic() + timeout
        while handle is not None and time.monotonic() < end:
            time.sleep(POLL_S)
            resp = self.http.post(url, json=body, params=handle, timeout=timeout)
            if resp.status_code != 200 or "response" in _json(resp):
                break
        return resp


def _json(resp: requests.Response) -> dict:
    try:
        data = resp.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _job_handle(resp: requests.Response) -> dict | None:
    data = _json(resp) if resp.status_code == 200 else {}
    if "cacheKey" in data and "job" in data and "response" not in data:
        return {"cacheKey": data["cacheKey"], "job": data["job"]}
    return None


def _error_text(resp: requests.Response, error_id: str) -> str:
    try:
        return resp.json()["response"].get(error_id, {}).get("children") or ""
    except (ValueError, KeyError, AttributeError):
        return ""


def user_loop(
    client: Client,
    n_layers: int,
    n_heads: int,
    columns: list[str],
    stop_at: float,
    seed: int,
    log: list,
) -> None:
    rng = random.Random(seed)
    while time.monotonic() < stop_at:
        action = rng.choice(["atlas", "scatter", "attention", "geometry", "ablation"])
        layer, head = rng.randrange(n_layers), rng.randrange(n_heads)
        prompt = rng.choice(PROMPTS)
        common = {"layer-dd.value": layer, "head-dd.value": head, "prompt.value": prompt,
                  "client-id.data": f"user-{seed}"}  # fmt: skip
        if action == "atlas":
            values = {**common, "atlas-score.value": rng.choice(columns)}
            args, err = ("atlas.figure", values, "atlas-score.value"), None
        elif action == "scatter":
            x, y = rng.sample(columns, 2)
            values = {**common, "scatter-x.value": x, "scatter-y.value": y}
            args, err = ("scatter.figure", values, "scatter-x.value"), None
        elif action == "attention":
            args, err = ("attn-map.figure", common, "analyse-btn.n_clicks"), "attn-error"
        elif action == "geometry":
            args, err = ("geom-hist.figure", common, "analyse-btn.n_clicks"), "geom-error"
        else:
            heads = [f"L{rng.randrange(n_layers)}.H{rng.randrange(n_heads)}" for _ in range(3)]
            values = {
                **common,
                "ablate-heads.value": heads,
                "ablate-kind.value": rng.choice(["zero", "mean", "uniform"]),
            }
            args, err = ("ablate-fig.figure", values, "ablate-btn.n_clicks"), "ablate-error"
        t0 = time.perf_counter()
        try:
            resp = client.call(*args)
            ok = resp.status_code == 200 and not (err and _error_text(resp, err))
            detail = "" if ok else f"{resp.status_code} {_error_text(resp, err or '')[:200]}"
        except requests.RequestException as e:
            ok, detail = False, f"{type(e).__name__}: {e}"
        log.append((action, time.perf_counter() - t0, ok, detail))


def check_limits(client: Client) -> dict[str, Any]:
    """Too-long prompt -> message in the page; oversized body -> 413; unknown head -> message."""
    long_prompt = "word " * 2000
    values = {"layer-dd.value": 0, "head-dd.value": 0, "prompt.value": long_prompt}
    r1 = client.call("attn-map.figure", values, "analyse-btn.n_clicks")
    msg = _error_text(r1, "attn-error")
    bad_head = {"layer-dd.value": 999, "head-dd.value": 0, "prompt.value": PROMPTS[0]}
    r2 = client.call("attn-map.figure", bad_head, "analyse-btn.n_clicks")
    r3 = client.http.post(
        f"{client.url}/_dash-update-component",
        data=b"x" * (2 << 20),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    return {
        "too_long_prompt_status": r1.status_code,
        "too_long_prompt_message": msg,
        "unknown_head_message": _error_text(r2, "attn-error"),
        "oversized_request_status": r3.status_code,
    }


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def page_load_memory(url: str, pid: int, pages: int = 200, seed: int = 0) -> dict[str, Any]:
    """``pages`` page loads, each a new page (its own client id) that fetches the layout and
    draws an attention map for one of the prompts; the server's RSS every 50 pages."""
    rng = random.Random(seed)
    client = Client(url)
    rss = [_rss_mib(pid)]
    for i in range(pages):
        client.http.get(f"{url}/_dash-layout", timeout=30)
        values = {
            "layer-dd.value": rng.randrange(2),
            "head-dd.value": rng.randrange(2),
            "prompt.value": rng.choice(PROMPTS),
            "client-id.data": f"page-{seed}-{i}",
        }
        client.call("attn-map.figure", values, "analyse-btn.n_clicks")
        if (i + 1) % 50 == 0:
            rss.append(_rss_mib(pid))
    return {"pages": pages, "rss_mib_every_50": rss, "growth_mib_last_150": rss[-1] - rss[1]}


def start_server(model: str, run: str | None, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "interp.cli", "dashboard", "--model", model, "--port", str(port)]
    if run:
        cmd += ["--run", run]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)


def wait_ready(url: str, proc: subprocess.Popen | None, timeout: float = 600) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the dashboard server exited: {proc.stderr.read()[-2000:]}")
        try:
            status = requests.get(f"{url}/api/status", timeout=5).json()
            if status["error"]:
                raise RuntimeError(f"the dashboard failed to load: {status['error']}")
            if status["stage"].startswith("ready"):
                return status
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout} s")


def run_load(url: str, users: int, seconds: float, seed: int = 0) -> dict[str, Any]:
    """Drive ``users`` threads for ``seconds`` against a ready server; latency stats per view."""
    client = Client(url)
    status = wait_ready(url, None, 60)
    r = client.call("layer-dd.options", {"session-key.data": "x"}, "session-key.data")
    resp = r.json()["response"]
    n_layers = len(resp["layer-dd"]["options"])
    n_heads = len(resp["head-dd"]["options"])
    columns = resp["atlas-score"]["options"]
    log: list = []
    stop_at = time.monotonic() + seconds
    threads = [
        threading.Thread(
            target=user_loop,
            args=(Client(url), n_layers, n_heads, columns, stop_at, seed + i, log),
        )
        for i in range(users)
    ]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = np.array([x[1] for x in log])
    per_view = {}
    for action in sorted({x[0] for x in log}):
        v = np.array([x[1] for x in log if x[0] == action])
        per_view[action] = {
            "n": len(v),
            "p50_ms": float(np.percentile(v, 50) * 1000),
            "p95_ms": float(np.percentile(v, 95) * 1000),
        }
    errors = [x for x in log if not x[2]]
    return {
        "model": status["model"],
        "users": users,
        "seconds": seconds,
        "wall_s": wall,
        "requests": len(log),
        "requests_per_s": len(log) / wall,
        "errors": len(errors),
        "error_examples": [f"{a}: {d}" for a, _, _, d in errors[:5]],
        "p50_ms": float(np.percentile(lat, 50) * 1000) if len(lat) else None,
        "p95_ms": float(np.percentile(lat, 95) * 1000) if len(lat) else None,
        "per_view": per_view,
        "limits": check_limits(client),
    }


def main() -> None:
    def cli(
        model: str = "smollm2-135m",
        run: Annotated[str | None, typer.Option(help="run folder for the head tables")] = None,
        users: int = 20,
        seconds: float = 60.0,
        port: int = 8765,
        out: Annotated[Path | None, typer.Option(help="JSON path (default: results/)")] = None,
        baseline_seconds: float = 15.0,
    ) -> None:
        url = f"http://127.0.0.1:{port}"
        proc = start_server(model, run, port)
        try:
            wait_ready(url, proc)
            baseline = run_load(url, 1, baseline_seconds, seed=1000)  # one user, same server
            result = run_load(url, users, seconds)
            result["baseline_1_user"] = baseline
            result["memory"] = page_load_memory(url, proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)
        result["server"] = (
            "interp dashboard (waitress, 64 threads; long views as background jobs on a "
            "2-thread pool), separate process, 127.0.0.1"
        )
        result["machine"] = f"{os.cpu_count()} CPU cores"
        print(f"\n{users} users x {seconds:.0f} s against {model} ({result['machine']})")
        print(f"{'view':<10} {'n':>6} {'p50 ms':>9} {'p95 ms':>9} {'1-user p50':>11}")
        for view, s in result["per_view"].items():
            one = baseline["per_view"].get(view, {}).get("p50_ms", float("nan"))
            print(f"{view:<10} {s['n']:>6} {s['p50_ms']:>9.1f} {s['p95_ms']:>9.1f} {one:>11.1f}")
        print(
            f"{'all':<10} {result['requests']:>6} {result['p50_ms']:>9.1f} "
            f"{result['p95_ms']:>9.1f}  ({result['requests_per_s']:.1f} req/s, "
            f"{result['errors']} errors)"
        )
        print(
            f"one user alone: p50 {baseline['p50_ms']:.1f} ms, p95 {baseline['p95_ms']:.1f} ms, "
            f"{baseline['requests_per_s']:.1f} req/s, {baseline['errors']} errors"
        )
        print("limits:", json.dumps(result["limits"]))
        mem = result["memory"]
        print(f"server RSS over {mem['pages']} page loads (MiB, every 50): "
              f"{[round(x) for x in mem['rss_mib_every_50']]}")  # fmt: skip
        path = out or ROOT / "benchmarks" / "results" / f"dashboard_load_{model}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2))
        print(f"wrote {path}")

    typer.run(cli)


if __name__ == "__main__":
    main()
