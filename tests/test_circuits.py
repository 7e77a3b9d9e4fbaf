"""Task generators and the circuit-discovery pipeline (tiny model end to end; SmolLM2 tasks)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from circuits.discovery import discover, head_outputs, overlap
from circuits.tasks import make_task
from interp.cli import app
from interp.errors import InputError


def test_head_outputs_sum_to_attention_output(tiny):
    """Sum over heads of each head's residual write (+ o_proj bias, none here) equals the
    attention block's output, averaged over positions."""
    task = make_task(tiny, "induction", n=3)
    per_head = head_outputs(tiny, task.clean)  # [3, layers * heads, d_model]
    with torch.no_grad():
        _, cache = tiny.run_with_cache(
            task.clean.tokens, names_filter=lambda n: "attn.hook_out" in n
        )
    out = cache["blocks.1.attn.hook_out"].mean(1)  # [3, d_model] (no padding here)
    torch.testing.assert_close(per_head[:, 4:8].sum(1), out, atol=1e-5, rtol=1e-4)


def test_discovery_end_to_end_on_tiny(tiny):
    task = make_task(tiny, "induction", n=6)
    d = discover(tiny, task, sae_epochs=20, progress=False, circuit_fraction=0.25)
    t = d.table
    assert len(t) == 8 and t.in_patching_circuit.sum() == 2 and t.in_sae_circuit.sum() == 2
    s = d.summary
    for key in ("roc_auc_sae_vs_patching", "precision_at_k", "recall_at_k",
                "faithfulness_patching_circuit", "sae_seconds", "patching_seconds"):  # fmt: skip
        assert key in s


def test_overlap_is_shared_heads_over_the_smaller_circuit():
    """Hand-built: A = {1, 2, 3}, B = {2, 3, 4, 5}: 2 shared of the smaller circuit's 3."""
    a = pd.Series([False, True, True, True, False, False])
    b = pd.Series([False, False, True, True, True, True])
    assert overlap(a, b) == pytest.approx(2 / 3)
    assert overlap(b, a) == pytest.approx(2 / 3)
    assert overlap(a, ~a) == 0.0


def test_sae_trains_on_few_examples_as_official():
    from circuits.discovery import sae_training_examples

    idx = sae_training_examples(40, 10, seed=0)
    assert len(idx) == 10 == len(set(idx.tolist())) and (idx < 40).all()
    assert (idx[:-1] < idx[1:]).all()  # sorted
    assert (idx >= 20).any() and (idx < 20).any()  # clean and corrupted shuffled together
    assert sae_training_examples(40, 10, seed=0).tolist() == idx.tolist()  # seeded
    assert sae_training_examples(8, None, 0).tolist() == list(range(8))
    assert sae_training_examples(8, 20, 0).tolist() == list(range(8))


def test_overlap_hand_computed():
    a = pd.Series([True, True, False, False])
    b = pd.Series([True, False, True, False])
    assert overlap(a, b) == 0.5


def test_circuit_cli_on_tiny(tmp_path):
    r = CliRunner().invoke(
        app,
        ["circuit", "induction", "--model", "tiny", "--n", "4", "--epochs", "5",
         "--out", str(tmp_path)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (tmp_path / "induction.parquet").is_file() and (tmp_path / "induction.png").is_file()
    assert (tmp_path / "induction_sae" / "sae_weights.safetensors").is_file()
    summary = json.loads((tmp_path / "induction.json").read_text())
    assert summary["n_prompts"] == 4 and not (tmp_path / "overlap.json").exists()  # one task
    bad = CliRunner().invoke(app, ["circuit", "nope", "--model", "tiny", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "unknown task" in bad.output


@pytest.mark.real_model
@pytest.mark.parametrize(
    "name", ["ioi", "colored_objects", "greater_than", "docstring", "induction"]
)
def test_tasks_on_smollm2(smol, name):
    task = make_task(smol, name, n=12)
    assert task.clean.lengths == task.corrupted.lengths
    with torch.no_grad():
        clean = smol(task.clean.tokens, attention_mask=task.clean.attention_mask)
        corrupt = smol(task.corrupted.tokens, attention_mask=task.corrupted.attention_mask)
    # the model does the clean task better than the corrupted twin
    assert task.logit_diff(clean) > task.logit_diff(corrupt)
    if name in ("ioi", "induction"):
        assert task.accuracy(clean) > 0.9
    with pytest.raises(InputError):
        make_task(smol, name, n=1)


@pytest.mark.real_model
def test_ioi_corruption_uses_a_third_name(smol):
    task = make_task(smol, "ioi", n=6)
    for c, x in zip(task.prompts, task.corrupted_prompts, strict=True):
        diff = [(a, b) for a, b in zip(c.split(), x.split(), strict=True) if a != b]
        assert len(diff) == 1  # only the second mention of the subject changed
        assert diff[0][1].strip(",.") not in c
    assert np.all(task.answer.numpy() != task.wrong.numpy())
