"""The complexity-ladder tasks: each sequence follows its generating rule exactly."""

from __future__ import annotations

import pytest
import torch

from circuits.tasks import complexity as T
from interp.errors import InputError


def _words(row, mask):
    return [T.VOCAB[int(i)] for i, m in zip(row, mask, strict=True) if m]


def test_recall_answer_is_the_value_of_the_queried_key():
    b = T.sample("recall", 5, 50, seed=0)
    assert b.ids.shape == (50, 2 * 5 + 3) and b.scored[:, -1].all() and b.scored.sum() == 50
    for row, mask in zip(b.ids, b.attention_mask, strict=True):
        w = _words(row, mask)
        pairs = dict(zip(w[0:10:2], w[1:10:2], strict=True))
        assert len(pairs) == 5  # distinct keys
        assert w[10] == "?" and w[12] == pairs[w[11]]


def test_delay_sum_follows_the_recurrence():
    c = 3
    b = T.sample("delay_sum", c, 20, seed=1)
    assert b.scored[:, :c].sum() == 0 and b.scored[:, c:].all()
    for row in b.ids:
        x = [int(T.VOCAB[int(i)][1:]) for i in row]
        assert all(x[t] == sum(x[t - c : t]) % 10 for t in range(c, len(x)))


def test_mixture_has_task_tokens_and_padding():
    b = T.sample("recall,delay_sum", 2, 10, seed=2)
    first = [T.VOCAB[int(i)] for i in b.ids[:, 0]]
    assert set(first) == {"T_recall", "T_delay_sum"}
    recall_rows = torch.tensor([f == "T_recall" for f in first])
    pad = b.attention_mask[recall_rows] == 0
    assert pad.any() and (b.ids[recall_rows][pad] == T.PAD).all()
    assert not b.scored[b.attention_mask == 0].any()
    assert T.chance("recall,delay_sum") == pytest.approx((1 / 16 + 1 / 10) / 2)


def test_same_seed_same_data_and_clear_errors():
    assert torch.equal(T.sample("recall", 3, 4, 7).ids, T.sample("recall", 3, 4, 7).ids)
    with pytest.raises(InputError, match="unknown task"):
        T.sample("sorting", 2, 4, 0)
    with pytest.raises(InputError, match="out of range"):
        T.sample("recall", 17, 4, 0)


@pytest.mark.parametrize("task", ["backcopy", "backcopy_no_bos"])
def test_backcopy_follows_the_bigram_table_and_copies_after_triggers(task):
    """Every token after the first content token is a bigram successor of the one before, a
    trigger (D0 .. D{c-1}), or, after a trigger, a copy of the token before the trigger; every
    prediction after the first content token is scored; <bos> only in ``backcopy``."""
    c = 3
    b = T.sample(task, c, 200, seed=3)
    bos = int(task == "backcopy")
    assert b.ids.shape == (200, T.BACKCOPY_LENGTH + bos)
    assert (b.ids[:, 0] == T.INDEX["<bos>"]).all() == bool(bos)
    assert not b.scored[:, : bos + 1].any() and b.scored[:, bos + 1 :].all()
    triggers = {T.INDEX[f"D{i}"] for i in range(c)}
    n_copies = 0
    for row in b.ids.tolist():
        x = row[bos:]
        for t in range(1, len(x)):
            if x[t - 1] in triggers:
                assert x[t] == x[t - 2]
                n_copies += 1
            else:
                assert x[t] in triggers or x[t] in T.BIGRAMS[x[t - 1]]
    assert n_copies > 200  # ~0.15 of the steps are triggers
