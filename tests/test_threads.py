"""threads_for: one thread for loops of small ops, the count restored after (also on error)."""

from __future__ import annotations

import pytest
import torch

from interp.threads import SMALL_OP_MACS, threads_for


def test_small_work_runs_on_one_thread_and_the_count_comes_back():
    torch.set_num_threads(2)
    with threads_for(SMALL_OP_MACS - 1) as used:
        assert used == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == 2
    with threads_for(SMALL_OP_MACS) as used:
        assert used == 2 == torch.get_num_threads()
    with pytest.raises(RuntimeError), threads_for(10):
        raise RuntimeError("a failing loop")
    assert torch.get_num_threads() == 2


def test_sae_training_is_unchanged_by_the_thread_count(monkeypatch):
    """Same seed, same data: the SAE trained on one thread (threads_for's choice for these
    sizes) equals one trained with every thread kept (threshold 0), up to float reordering."""
    import interp.sae.model as sae_model

    x = torch.randn(30, 16, generator=torch.Generator().manual_seed(0))
    torch.set_num_threads(2)
    a, la = sae_model.train_sae(x, d_sae=20, epochs=20, seed=3)
    monkeypatch.setattr(sae_model, "threads_for", lambda macs: threads_for(macs, threshold=0))
    b, lb = sae_model.train_sae(x, d_sae=20, epochs=20, seed=3)
    torch.testing.assert_close(a.W_enc, b.W_enc, rtol=1e-4, atol=1e-5)
    assert la == pytest.approx(lb, rel=1e-4)
