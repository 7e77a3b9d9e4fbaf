"""Bad input to the command line: one line that says what is wrong, exit code 2, nothing written.

Each case runs in an empty working folder holding only the files the case itself sets up; the
folder's contents (names and modification times) must be the same afterwards. The table is
also in docs/design.md ("Bad input").
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from interp.cli import app

BINARY = bytes(range(256)) * 4
SWEEP = {"name": "t", "models": ["tiny"], "prompts": [{"haystack": 2}], "context_lengths": [32]}


# ten levels of ten aliases: 10^10 values from ~20 lines (a "billion laughs")
ALIAS_BOMB = (
    "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 10))
    + "detectors: *a9\nmodels: [tiny]\nprompts: [{builtin: scan}]\n"
)


def _sweep(**over) -> Callable[[Path], None]:
    return lambda d: (d / "s.yaml").write_text(yaml.safe_dump({**SWEEP, **over}))


def _file(name: str, data: bytes | str) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())

    return make


def _calibration(beta: float, threshold: float) -> Callable[[Path], None]:
    cfg = {"model": "tiny", "heads": [[0, 0]], "beta": beta, "threshold": threshold,
           "provenance": {}}  # fmt: skip
    return _file("cal.json", json.dumps(cfg))


def _nothing(d: Path) -> None:
    pass


def _run_folder_with_corrupt_table(d: Path) -> None:
    _file("run/manifest.json", json.dumps({"detectors": {"sink": {}}}))(d)
    _file("run/detectors/sink.parquet", b"PAR1" + BINARY)(d)


def _pickled_model(d: Path) -> None:
    planted = Path(__file__).parents[1] / "circuits" / "data" / "planted" / "induction"
    _file("m/config.json", (planted / "config.json").read_text())(d)
    _file("m/pytorch_model.bin", b"\x80\x04pickle that would run code")(d)


def _model_config(**over) -> Callable[[Path], None]:
    """A copy of a planted model folder whose config.json has ``over`` applied."""
    planted = Path(__file__).parents[1] / "circuits" / "data" / "planted" / "induction"

    def make(d: Path) -> None:
        for f in planted.iterdir():
            if f.is_file():
                _file(f"m/{f.name}", f.read_bytes())(d)
        cfg = json.loads((planted / "config.json").read_text())
        _file("m/config.json", json.dumps({**cfg, **over}))(d)

    return make


def _tokenizer_config(data: dict) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        _model_config()(d)
        _file("m/tokenizer_config.json", json.dumps(data))(d)

    return make


def _safetensors(header: bytes) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        _model_config()(d)
        _file("m/model.safetensors", header)(d)

    return make


def _link_loop(d: Path) -> None:
    (d / "a").symlink_to(d / "b")
    (d / "b").symlink_to(d / "a")


def _lock_links_outside(d: Path) -> None:
    _file("outside.txt", "precious")(d)
    (d / "run").mkdir()
    (d / "run" / ".lock").symlink_to(d / "outside.txt")


# (id, argv, set-up, expected text in the output)
CASES = [
    ("port-too-large", ["dashboard", "--model", "tiny", "--port", "70000"], _nothing,
     "less than or equal to 65535"),
    ("port-negative", ["dashboard", "--model", "tiny", "--port", "-5"], _nothing,
     "greater than or equal to 0"),
    ("host-unresolvable", ["dashboard", "--model", "tiny", "--host", "no-such-host.invalid"],
     _nothing, "does not resolve"),
    ("out-is-a-file", ["scan", "tiny", "--out", "f.txt"], _file("f.txt", "x"),
     "is a file; give a folder"),
    ("out-under-a-file", ["scan", "tiny", "--out", "f.txt/run"], _file("f.txt", "x"),
     "which is a file, not a folder"),
    ("out-empty", ["scan", "tiny", "--out", ""], _nothing, "other than the current one"),
    ("calibrate-out-is-a-folder", ["calibrate", "tiny", "--out", "d"], _file("d/keep", "x"),
     "is a folder; give a file name"),
    ("set-unknown-option", ["scan", "tiny", "--out", "r", "--set", "sink.n_token=8"], _nothing,
     "no option n_token; its options: n_tokens=64"),
    ("set-wrong-type", ["scan", "tiny", "--out", "r", "--set", "sink.n_tokens=many"], _nothing,
     "n_tokens='many' should be int"),
    ("set-threshold-nan", ["scan", "tiny", "--out", "r", "--set", "sink.threshold=NaN"],
     _nothing, "threshold=nan must be a finite number in [0, 1]"),
    ("set-threshold-infinite", ["scan", "tiny", "--out", "r", "--set",
                                "sink.threshold=Infinity"], _nothing, "must be a finite number"),
    ("set-threshold-negative", ["scan", "tiny", "--out", "r", "--set", "sink.threshold=-5"],
     _nothing, "threshold=-5 must be a finite number in [0, 1]"),
    ("set-n-seqs-negative", ["scan", "tiny", "--out", "r", "--set", "induction.n_seqs=-3"],
     _nothing, "n_seqs=-3 must be a finite number in [1, 4096]"),
    ("set-n-seqs-huge", ["scan", "tiny", "--out", "r", "--set", "induction.n_seqs=100000000"],
     _nothing, "n_seqs=100000000 must be a finite number in [1, 4096]"),
    ("set-no-dot", ["scan", "tiny", "--out", "r", "--set", "n_tokens=8"], _nothing,
     "write DETECTOR.OPTION=VALUE"),
    ("set-detector-not-scanned", ["scan", "tiny", "--out", "r", "--detectors", "sink", "--set",
                                  "anchor.n_tokens=8"], _nothing, "is not in this scan"),
    ("set-bad-inputs", ["scan", "tiny", "--out", "r", "--set", "sink.inputs=nope"], _nothing,
     "sink inputs must be one of 'text', 'model_prompts', not 'nope'"),
    ("planted-unknown", ["train-toy", "--planted", "sinks", "--out", "m"], _nothing,
     "unknown planted model 'sinks'; choose from induction, recall, sink, no_bos, mixture, "
     "mixture_b"),
    ("binary-prompts", ["scan", "tiny", "--out", "r", "--prompts", "p.txt"],
     _file("p.txt", BINARY), "is not a UTF-8 text file"),
    ("binary-sweep-yaml", ["sweep", "s.yaml"], _file("s.yaml", BINARY),
     "is not a UTF-8 text file"),
    ("binary-task-jsonl", ["calibrate", "tiny", "--dataset", "t.jsonl", "--test", "t.jsonl",
                           "--out", "c.json"], _file("t.jsonl", BINARY),
     "is not a UTF-8 text file"),
    ("sweep-detectors-not-a-list", ["sweep", "s.yaml"], _sweep(detectors=5), "non-empty list"),
    ("sweep-out-dot", ["sweep", "s.yaml"], _sweep(out="."), "names the sweep file's own folder"),
    ("sweep-out-is-a-file", ["sweep", "s.yaml"],
     lambda d: (_sweep(out="f.txt")(d), _file("f.txt", "x")(d)), "is a file; give a folder"),
    ("sweep-alias-bomb", ["sweep", "s.yaml"], _file("s.yaml", ALIAS_BOMB),
     "holds more than 10,000 values"),
    ("sweep-deep-nesting", ["sweep", "s.yaml"], _file("s.yaml", "models: " + "[" * 200 + "]" * 200),
     "nests deeper than 20 levels"),
    ("sweep-haystack-huge", ["sweep", "s.yaml"], _sweep(prompts=[{"haystack": 10**9}]),
     "must be an integer in [1, 100,000], got 1000000000"),
    ("sweep-context-length-huge", ["sweep", "s.yaml"], _sweep(context_lengths=[10**12]),
     "integers in [2, 1,000,000]"),
    ("sweep-model-missing", ["sweep", "s.yaml"], _sweep(models=["tiny", "no/such/model"]),
     "sweep model 'no/such/model' is neither a known name"),
    ("sweep-task-unknown", ["sweep", "s.yaml"],
     _sweep(prompts=[{"builtin": "scan"}, {"task": "no_such_task", "n": 2}]),
     "unknown task(s) 'no_such_task'"),
    ("sweep-detectors-empty", ["sweep", "s.yaml"], _sweep(detectors=[]), "non-empty list"),
    ("sweep-n-not-a-number", ["sweep", "s.yaml"], _sweep(prompts=[{"task": "ioi", "n": "abc"}]),
     "n of task set"),
    ("sweep-n-negative", ["sweep", "s.yaml"], _sweep(prompts=[{"task": "ioi", "n": -3}]),
     "n of task set"),
    ("sweep-no-lengths", ["sweep", "s.yaml"], _sweep(context_lengths=[]),
     "non-empty list of integers"),
    ("sweep-name-escapes", ["sweep", "s.yaml"],
     _sweep(prompts=[{"name": "../../escaped", "haystack": 2}]), "prompt set name"),
    ("toy-lr-nan", ["train-toy", "--lr", "nan", "--out", "toy"], _nothing,
     "lr must be a finite number"),
    ("calibration-beta-out-of-range", ["generate", "hello there", "--model", "tiny",
                                       "--calibration", "cal.json"], _calibration(1.5, 0.1),
     "beta must be in [0, 1]"),
    ("calibration-threshold-out-of-range", ["generate", "hello there", "--model", "tiny",
                                            "--calibration", "cal.json"], _calibration(0.4, 2.0),
     "threshold must be in (0, 1)"),
    ("generate-longer-than-context", ["generate", "x" * 1100, "--model", "tiny"], _nothing,
     "exceeds tiny's context of 1024 tokens"),
    ("circuit-unknown-task", ["circuit", "greater_than", "foo", "--model", "tiny", "--out", "c"],
     _nothing, "unknown task(s) 'foo'"),
    ("gguf-truncated", ["info", "bad.gguf"], _file("bad.gguf", b"GGUF\x03\x00\x00\x00junk"),
     "could not read bad.gguf"),
    ("gguf-not-gguf", ["info", "bad.gguf"], _file("bad.gguf", BINARY),
     "does not start with the GGUF magic bytes"),
    ("pickled-weights", ["scan", "m", "--out", "r"], _pickled_model,
     "holds its weights as pickles (pytorch_model.bin)"),
    ("config-layers-huge", ["scan", "m", "--out", "r"], _model_config(num_hidden_layers=10**9),
     "num_hidden_layers = 1000000000 is not a whole number in [1, 1,000]"),
    ("config-layers-negative", ["scan", "m", "--out", "r"], _model_config(num_hidden_layers=-1),
     "num_hidden_layers"),
    ("config-layers-float", ["scan", "m", "--out", "r"], _model_config(num_hidden_layers=1e9),
     "num_hidden_layers"),
    ("config-heads-zero", ["scan", "m", "--out", "r"], _model_config(num_attention_heads=0),
     "num_attention_heads"),
    ("auto-map-list-form", ["scan", "m", "--out", "r"],
     _tokenizer_config({"auto_map": ["tok.MyTokenizer", None]}), "has an auto_map"),
    ("safetensors-corrupt-header", ["scan", "m", "--out", "r"],
     _safetensors(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all"),
     "could not load the Hugging Face model in m: Error while deserializing header"),
    ("safetensors-absurd-header", ["scan", "m", "--out", "r"],
     _safetensors(b"\xff" * 8 + b"{}"), "header too large"),
    ("out-link-loop", ["scan", "tiny", "--out", "a/run"], _link_loop, "--out a/run:"),
    ("out-name-too-long", ["scan", "tiny", "--out", "x" * 300], _nothing,
     "longer than 255 bytes"),
    ("prompt-line-huge", ["scan", "tiny", "--out", "r", "--prompts", "p.txt"],
     _file("p.txt", "short prompt\n" + "word " * 2_000_000 + "\n"),
     "prompt 2 of p.txt has 10,000,000 characters; a prompt holds at most 200,000"),
    ("lock-is-a-symlink", ["scan", "tiny", "--out", "run", "--detectors", "none"],
     _lock_links_outside, "is a symbolic link; remove it"),
    ("run-folder-corrupt-table", ["families", "tiny", "--run", "run", "--family", "sink",
                                  "--out", "f"], _run_folder_with_corrupt_table,
     "does not exist or is incomplete"),
]  # fmt: skip


def _tree(d: Path) -> dict[str, int]:
    return {str(p.relative_to(d)): p.lstat().st_mtime_ns for p in d.rglob("*")}


@pytest.mark.parametrize(("argv", "setup", "message"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_bad_input_fails_at_once_with_one_line(argv, setup, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    setup(tmp_path)
    before = _tree(tmp_path)
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output
    assert _tree(tmp_path) == before  # nothing written, nothing touched


def test_port_in_use_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["dashboard", "--model", "tiny", "--port", str(port)])
    assert result.exit_code == 2 and "cannot listen on 127.0.0.1" in result.output
    assert not list(tmp_path.iterdir())


def test_unwritable_out_is_refused(tmp_path, monkeypatch):
    """A read-only folder as --out's parent: refused before any work. The folder is made
    read-only, and ``os.access`` is told so too, since root may write anywhere (CI runs as root)."""
    import interp.checks

    monkeypatch.chdir(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    real_access = os.access
    monkeypatch.setattr(
        interp.checks.os,
        "access",
        lambda path, mode: False if Path(path) == locked else real_access(path, mode),
    )
    try:
        result = CliRunner().invoke(app, ["scan", "tiny", "--out", "locked/run"])
    finally:
        locked.chmod(0o700)
    assert result.exit_code == 2 and "permission denied" in result.output
    assert not list(locked.iterdir())


def test_unreachable_ray_cluster_fails_in_seconds(tmp_path, monkeypatch):
    pytest.importorskip("ray", reason="the Ray engine needs the distributed extra (ray)")
    import time

    monkeypatch.chdir(tmp_path)
    _sweep()(tmp_path)
    t0 = time.perf_counter()
    result = CliRunner().invoke(
        app, ["sweep", "s.yaml", "--engine", "ray", "--address", "127.0.0.1:1", "--out", "o"]
    )
    assert result.exit_code == 2 and "cannot reach 127.0.0.1:1" in result.output
    assert time.perf_counter() - t0 < 60


def _listener(answer: bytes):
    """A local TCP server that answers every connection with ``answer``; (address, stop)."""
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(0.2)
    done = threading.Event()

    def serve():
        while not done.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.recv(64)
                conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    return f"127.0.0.1:{srv.getsockname()[1]}", lambda: (done.set(), srv.close())


def test_a_listener_that_is_not_ray_is_refused_in_seconds():
    """A TCP listener that does not answer the HTTP/2 preface with a SETTINGS frame is not a
    Ray head: refused within the probe's timeout; a gRPC-like answer passes."""
    import time

    from interp.checks import reachable
    from interp.errors import InputError

    address, stop = _listener(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    try:
        t0 = time.perf_counter()
        with pytest.raises(InputError, match="does not speak gRPC"):
            reachable(address, timeout=2.0)
        assert time.perf_counter() - t0 < 5
    finally:
        stop()
    address, stop = _listener(b"\x00\x00\x06\x04\x00\x00\x00\x00\x00")  # SETTINGS
    try:
        reachable(address, timeout=2.0)
    finally:
        stop()


def test_a_corrupt_cached_table_is_recomputed_with_a_warning(tiny, tmp_path):
    from interp.runs.scan import scan

    out = tmp_path / "run"
    first = scan(tiny, out, detectors=["previous_token"], progress=False)
    table = out / "detectors" / "previous_token.parquet"
    table.write_bytes(table.read_bytes()[: len(table.read_bytes()) // 2])  # truncated
    with pytest.warns(UserWarning, match=r"cannot be read[\s\S]*a scan recomputes it"):
        again = scan(tiny, out, detectors=["previous_token"], progress=False)
    assert not again.detector_reused["previous_token"]
    assert again.detectors["previous_token"].table.equals(first.detectors["previous_token"].table)


def test_a_run_folder_that_cannot_be_read_is_one_clear_error(tmp_path):
    """What the dashboard's --run reads: a broken manifest or table is an InputError."""
    from interp.errors import InputError
    from interp.runs.folder import RunFolder

    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot read"):
        RunFolder(tmp_path).scores()
    (tmp_path / "manifest.json").write_text(json.dumps({"detectors": {"sink": {}}}))
    (tmp_path / "detectors").mkdir()
    (tmp_path / "detectors" / "sink.parquet").write_bytes(b"PAR1" + BINARY)
    with pytest.raises(InputError, match="cannot read the run folder"):
        RunFolder(tmp_path).scores()


def test_a_huge_option_value_is_not_rendered_in_full(tmp_path, monkeypatch):
    """A 5,000-element value of the wrong type is refused in one short line."""
    monkeypatch.chdir(tmp_path)
    huge = "retrieval.lengths=[" + ",".join(['"x"'] * 5000) + "]"
    result = CliRunner().invoke(app, ["scan", "tiny", "--out", "r", "--set", huge])
    assert result.exit_code == 2 and "should be" in result.output
    assert len(result.output) < 400, len(result.output)


def test_sweep_out_is_relative_to_the_sweep_file(tmp_path):
    """As every path of a sweep file (examples/sweep.yaml says so), ``out:`` resolves against
    the file's folder, not the working folder."""
    from interp.sweep.config import parse_config

    source = tmp_path / "sub" / "s.yaml"
    source.parent.mkdir()
    cfg = parse_config({**yaml.safe_load(yaml.safe_dump(SWEEP)), "out": "results"}, source)
    assert cfg.out == source.parent / "results"


def test_a_full_disk_is_one_line_and_leaves_no_temp_files(tmp_path, monkeypatch):
    """ENOSPC while a table is written: exit 2 with one line that says what to do, and no
    half-written file or temp file left behind."""
    import errno

    import interp.report as report

    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(report, "_fsync", full)
    result = CliRunner().invoke(app, ["scan", "tiny", "--out", "r", "--detectors", "none"])
    assert result.exit_code == 2, result.output
    assert "No space left on device; free some space" in " ".join(result.output.split())
    assert "Traceback" not in result.output
    leftovers = [p.name for p in (tmp_path / "r").rglob("*") if p.name.startswith(".")]
    assert leftovers in ([], [".lock"]), leftovers
    assert not list((tmp_path / "r").rglob("*.parquet"))


def test_every_command_has_the_one_error_exit():
    """Every registered command goes through ``refusing_bad_input`` (no command repeats its
    own try/except): an InterpError anywhere in it is one line and exit code 2."""
    import typer

    from interp.cli import app
    from interp.cli.common import _App
    from interp.errors import ModelLoadError

    assert app.registered_commands
    for cmd in app.registered_commands:
        assert getattr(cmd.callback, "__wrapped__", None) is not None, cmd.name
    probe = _App()

    @probe.command()
    def boom(x: int = 1) -> None:
        raise ModelLoadError(f"broken weights {x}")

    @probe.command()
    def fine() -> None:
        typer.echo("ok")

    r = CliRunner().invoke(probe, ["boom", "--x", "3"])
    assert r.exit_code == 2 and r.output.strip().splitlines() == ["error: broken weights 3"]
    assert CliRunner().invoke(probe, ["fine"]).exit_code == 0
