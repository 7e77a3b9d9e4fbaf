"""The interp CLI: --help everywhere, info, clear errors without tracebacks, scan."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from interp.cli import app

runner = CliRunner()
COMMANDS = [
    "models",
    "info",
    "scan",
    "validate",
    "anchors",
    "circuit",
    "calibrate",
    "generate",
    "dashboard",
    "cache-dir",
]


def test_dashboard_rejects_missing_run_folder(tmp_path):
    result = runner.invoke(app, ["dashboard", "--run", str(tmp_path / "nope"), "--port", "0"])
    assert result.exit_code == 2
    assert "does not exist" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("cmd", [[], *[[c] for c in COMMANDS]])
def test_help_on_every_command(cmd):
    result = runner.invoke(app, [*cmd, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_every_command_is_listed():
    listed = set(re.findall(r"│ (\S+)\s", runner.invoke(app, ["--help"]).output))
    assert set(COMMANDS) <= listed


def test_info_tiny_json():
    result = runner.invoke(app, ["info", "tiny", "--json"])
    assert result.exit_code == 0, result.output
    assert '"n_layers": 2' in result.output and '"n_kv_heads": 2' in result.output


@pytest.mark.real_model
def test_info_smollm2():
    result = runner.invoke(app, ["info", "smollm2-135m"])
    assert result.exit_code == 0, result.output
    rows = dict(re.findall(r"│ ([a-z_ ]+?)\s+│ (\S+)\s+│", result.output))
    assert rows["layers"] == "30" and rows["heads"] == "9"
    assert rows["kv heads"] == "3" and rows["d_head"] == "64"


def test_unknown_model_is_a_clean_error():
    result = runner.invoke(app, ["info", "no-such-model"])
    assert result.exit_code == 2
    assert "unknown model" in result.output and "smollm2-135m" in result.output
    assert "Traceback" not in result.output


def test_scan_writes_run_folder_and_resumes(tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("hello there\nthe cat sat on the mat\\nand slept\n")
    out = tmp_path / "run"
    args = ["scan", "tiny", "--out", str(out), "--prompts", str(prompts), "--detectors", "sink"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    for f in ("head_stats.parquet", "head_stats.png", "summary.md", "manifest.json"):
        assert (out / f).is_file()
    assert "computed" in first.output
    second = runner.invoke(app, args)
    assert second.exit_code == 0 and "reused" in second.output
    third = runner.invoke(app, [*args, "--set", "sink.n_tokens=16", "--set", "sink.threshold=0.5"])
    assert third.exit_code == 0, third.output
    config = json.loads((out / "manifest.json").read_text())["detectors"]["sink"]["config"]
    assert config == {"n_tokens": 16, "threshold": 0.5, "streaming": None, "inputs": "text"}


def test_scan_missing_prompt_file_is_a_clean_error(tmp_path):
    result = runner.invoke(app, ["scan", "tiny", "--prompts", str(tmp_path / "none.txt")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_scan_unknown_detector_is_a_clean_error(tmp_path):
    result = runner.invoke(app, ["scan", "tiny", "--out", str(tmp_path), "--detectors", "nope"])
    assert result.exit_code == 2 and "unknown detector" in result.output
    assert "Traceback" not in result.output


def test_validate_command_on_tiny(tmp_path):
    args = ["validate", "tiny", "--detector", "sink", "--out", str(tmp_path), "--k", "1"]
    result = runner.invoke(app, [*args, "--draws", "2"])
    assert result.exit_code == 0, result.output
    assert "baseline text_loss" in result.output and "top-K" in result.output
    # a loss that rises is an increase, not a "drop" (accuracies drop)
    assert "increase" in result.output and "drop" not in result.output
    assert (tmp_path / "validation" / "sink.png").is_file()
    bad = runner.invoke(app, ["validate", "tiny", "--detector", "anchor", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "no validation metric" in bad.output


def test_anchors_command_on_tiny():
    result = runner.invoke(
        app, ["anchors", "the cat sat on the mat and then it slept", "--model", "tiny"]
    )
    assert result.exit_code == 0, result.output
    assert "anchor tokens" in result.output and "preplan tokens" in result.output
    assert "by waad jump" in result.output and "by fai" in result.output  # their selection


def test_anchor_listing_ranks_by_the_selection_rule_and_sets_the_sink_apart(monkeypatch):
    """Preplan tokens are chosen by the WAAD jump and listed by it; token 0 (the sink) is
    never ranked as the top anchor even when its FAI is the largest."""
    import pandas as pd

    from interp.heads import anchor

    table = pd.DataFrame(
        {
            "position": [0, 1, 2, 3],
            "token": ["<s>", " a", " b", " c"],
            "waad": [0.0, 5.0, 1.0, 1.5],
            "waad_jump": [5.0, 4.0, 0.5, float("nan")],
            "fai": [0.9, 0.2, 0.4, 0.1],
            "preplan": [True, True, False, False],
            "anchor": [True, False, True, False],
        }
    )
    monkeypatch.setattr(anchor, "anchor_tokens", lambda model, text: table)
    r = runner.invoke(app, ["anchors", "x " * 20, "--model", "tiny"])
    assert r.exit_code == 0, r.output
    anchors = r.stdout.split("preplan tokens")[0]
    preplan = r.stdout.split("preplan tokens")[1]
    assert "'<s>'" not in anchors.split("token 0")[0]  # not in the ranked anchor rows
    assert "attention sink" in r.stdout and "' b'" in anchors
    assert preplan.index("5.0000") < preplan.index("4.0000")  # by the jump, largest first


def test_calibrate_and_generate_on_tiny(tmp_path):
    import json

    rows = [{"prompt": f"item {i} is", "choices": [" a", " b"], "label": i % 2} for i in range(6)]
    for split in ("cal", "test"):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = tmp_path / "c.json"
    args = ["calibrate", "tiny", "--dataset", str(tmp_path / "cal.jsonl"), "--test",
            str(tmp_path / "test.jsonl"), "--out", str(cfg), "--first-layer", "1"]  # fmt: skip
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    saved = json.loads(cfg.read_text())
    assert saved["model"] == "tiny" and "test_accuracy_before" in saved["provenance"]
    # 6 examples cannot show a reliable gain: nothing is saved, and the command says so
    assert saved["heads"] == [] and saved["provenance"]["verdict"] == "no reliable gain"
    assert "no reliable gain" in r.stdout and "detectable (80 % power)" in r.stdout
    plain = runner.invoke(app, ["generate", "hello", "--model", "tiny", "--max-new-tokens", "3"])
    assert plain.exit_code == 0 and plain.stdout.startswith("hello")
    assert "randomly initialised" in plain.stderr  # tiny says its numbers mean nothing
    calib = CalibrationConfig_json(tmp_path)
    g = runner.invoke(app, ["generate", "hello", "--model", "tiny", "--calibration", str(calib),
                            "--max-new-tokens", "3"])  # fmt: skip
    assert g.exit_code == 0, g.output
    assert "without the calibration" in g.stderr  # it says whether the calibration changed anything
    assert "calibrating 1 head(s) L1.H0" in g.stderr and "with the KV cache" in g.stderr
    full = runner.invoke(app, ["generate", "hello", "--model", "tiny", "--calibration", str(calib),
                               "--max-new-tokens", "3", "--recompute"])  # fmt: skip
    assert full.exit_code == 0 and "recomputing the sequence" in full.stderr
    from interp.calibration import CalibrationConfig

    empty = CalibrationConfig("tiny", []).save(tmp_path / "none.json")
    z = runner.invoke(app, ["generate", "hello", "--model", "tiny", "--calibration", str(empty),
                            "--max-new-tokens", "2"])  # fmt: skip
    assert z.exit_code == 0 and "selects no heads" in z.stderr
    gated = runner.invoke(app, ["generate", "hello", "--model", "tiny", "--calibration", str(cfg),
                                "--max-new-tokens", "2"])  # fmt: skip
    assert gated.exit_code == 0 and "no reliable gain" in gated.stderr
    # --task: the option's former name, still accepted
    missing = runner.invoke(app, ["calibrate", "tiny", "--task", str(tmp_path / "cal.jsonl")])
    assert missing.exit_code == 2 and "--test" in missing.output


def CalibrationConfig_json(folder):  # noqa: N802 - helper that writes a one-head config
    from interp.calibration import CalibrationConfig

    return CalibrationConfig("tiny", [(1, 0)]).save(folder / "one.json")


@pytest.mark.real_model
def test_quickstart_names_the_previous_token_head(capsys):
    """examples/quickstart.py's printed claim agrees with the library: the head it names in
    layer 16 is the previous-token detector's best head of that layer, and the rows it prints
    point at the previous token."""
    import importlib.util
    from pathlib import Path

    import interp
    from interp.heads import get_detector

    path = Path(__file__).parents[1] / "examples" / "quickstart.py"
    spec = importlib.util.spec_from_file_location("quickstart", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    got = module.main()
    printed = capsys.readouterr().out
    model = interp.load_model("smollm2-135m")
    table = get_detector("previous_token").run(model).table
    best = int(table[table.layer == 16].sort_values("score").iloc[-1]["head"])
    assert got["head"] == best
    assert f"layer 16: head {best} attends most to the previous token" in printed
    rows = got["rows"]  # (query t, key it attends most): the previous token for most rows
    assert len(rows) >= 5 and sum(s == t - 1 for t, s in rows) >= len(rows) - 1


def test_cli_starts_without_heavy_imports():
    """`interp --help`, `--version` and `models` answer without importing torch or
    transformer-lens (they took ~6-12 s when they did)."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom typer.testing import CliRunner\n"
        "from interp.cli import app\nr = CliRunner()\n"
        "for args in (['--help'], ['--version'], ['models']):\n"
        "    res = r.invoke(app, args); assert res.exit_code == 0, res.output\n"
        "    print(res.output)\n"
        "heavy = [m for m in ('torch', 'transformer_lens', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "interp 0.1.0" in p.stdout and "smollm2-135m" in p.stdout


@pytest.mark.real_model
def test_encoder_refuses_causal_only_commands():
    """MiniLM attends in both directions: `anchors` and `generate` refuse it with one line
    instead of printing numbers or text from an untrained head."""
    text = "the cat sat on the mat and then it slept for a very long time indeed"
    r = runner.invoke(app, ["anchors", text, "--model", "minilm-l6"])
    assert r.exit_code == 2 and "causal" in r.output
    r = runner.invoke(app, ["generate", "the cat sat", "--model", "minilm-l6"])
    assert r.exit_code == 2 and "cannot generate" in r.output


def test_dashboard_run_alone_names_its_model(tiny, tmp_path):
    """`interp dashboard --run RUN` without --model loads the model RUN was written for."""
    from interp.cli.serve import run_model
    from interp.runs.scan import scan

    scan(tiny, tmp_path / "run", detectors=[], progress=False)
    assert run_model(tmp_path / "run") == "tiny"
    assert run_model(None) is None


def test_calibration_effect_says_where_the_texts_part(tiny):
    from interp.cli.text import _calibration_effect

    tok = tiny.tokenizer
    same = _calibration_effect(tok, [70, 71, 72], [70, 71, 72])
    assert "the same 3 tokens" in same
    ids = tok("abcd", add_special_tokens=False)["input_ids"]
    parted = _calibration_effect(tok, ids[:2] + [ids[0]], ids)
    assert "new token 3" in parted and "'cd'" in parted  # the uncalibrated text from there


def test_circuit_tables_fit_an_80_column_terminal():
    from rich.console import Console

    from interp.cli.discovery import circuit_tables

    s = {"clean_logit_diff": 3.14159, "clean_accuracy": 0.987, "roc_auc_sae_vs_patching": 0.6123,
         "roc_auc_sae_held_out": 0.5871, "precision_at_k": 0.4, "recall_at_k": 0.5,
         "faithfulness_patching_circuit": 0.91, "faithfulness_sae_circuit": 0.33,
         "sae_seconds": 12.0, "patching_seconds": 340.0}  # fmt: skip
    console = Console(width=80, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    for table in circuit_tables({"colored_objects": s}):
        console.print(table)
    text = console.export_text()
    assert "…" not in text
    for number in ("3.14", "0.99", "0.612", "0.587", "0.91", "0.33", "340"):
        assert number in text


def test_unknown_model_is_refused_before_torch_is_imported():
    """A mistyped model or detector name is refused before the seconds it takes to import
    torch and transformer-lens (issue: 6-8 s to learn of a typo)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from interp.cli import app\n"
        "for argv, says in ((['scan', 'no-such-model'], 'unknown model'),\n"
        "                   (['generate', 'hi', '--model', 'nope'], 'unknown model'),\n"
        "                   (['scan', 'tiny', '--detectors', 'sink,bogus'], 'unknown detector')):\n"
        "    r = CliRunner().invoke(app, argv)\n"
        "    assert r.exit_code == 2 and says in r.output, r.output\n"
        "print('torch' in sys.modules, 'transformer_lens' in sys.modules)\n"
    )
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert got.stdout.split() == ["False", "False"], got.stdout + got.stderr


def test_the_light_detector_list_is_the_registry():
    from interp.heads import REGISTRY
    from interp.known_models import BUILTIN_DETECTORS

    assert sorted(BUILTIN_DETECTORS) == sorted(REGISTRY)


def test_help_paragraphs_reflow_to_the_terminal_width():
    """Each command's description is rewrapped to an 80-column terminal: no paragraph line
    but its last stops short (the source's own line breaks used to leave one-word lines)."""
    import typer.main

    names = [c.name for c in typer.main.get_command(app).commands.values()]
    assert len(names) >= 10
    for name in names:
        result = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "80"}, color=False)
        assert result.exit_code == 0, name
        intro = result.output.split("Usage:", 1)[1].split("╭", 1)[0].splitlines()[1:]
        paragraph: list[str] = []
        for line in [*intro, ""]:
            if line.strip():
                paragraph.append(line.rstrip())
                continue
            for short in paragraph[:-1]:
                assert len(short) > 50, f"`interp {name} --help` breaks early: {short!r}"
            paragraph = []
