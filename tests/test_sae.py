"""Discrete-code SAE: recovers planted codes on synthetic data; node/edge scores on a
hand-computed example; SAELens-layout save/load round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import homogeneity_score

from interp.errors import InputError
from interp.sae import edge_scores, load_sae, node_scores, save_sae, train_sae


def test_sae_recovers_planted_codes():
    """Data = one of 8 random unit directions (scaled) + noise: the argmax code of each
    example must identify its planted direction (up to relabelling)."""
    g = torch.Generator().manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(8, 32, generator=g), dim=1)
    labels = torch.randint(0, 8, (400,), generator=g)
    x = dirs[labels] * (2 + torch.rand(400, 1, generator=g)) + 0.05 * torch.randn(
        400, 32, generator=g
    )
    # the paper's lambda (0.02, on the L1 summed over latents) with a larger lr (1e-2) than its
    # default: the synthetic data is exactly 1-sparse, and the test checks that training finds
    # the planted atoms
    sae, losses = train_sae(x, d_sae=16, epochs=500, l1=0.02, lr=1e-2, seed=0)
    assert losses[-1] < losses[0] / 5
    codes = sae.codes(x).numpy()
    # each code picks out one planted direction (a direction may be split over two latents)
    assert homogeneity_score(labels.numpy(), codes) > 0.85

    # training (not the random init) puts a decoder atom on every planted direction
    def best_cosines(model):
        return (dirs @ torch.nn.functional.normalize(model.W_dec.detach(), dim=0)).max(1).values

    untrained, _ = train_sae(x, d_sae=16, epochs=1, seed=0)
    assert (best_cosines(sae) > 0.85).all()
    assert (best_cosines(untrained) < 0.9).any()
    # unit norms are kept, along the last dim of each weight as the official
    # ConstrainedUnitNormLinear: encoder rows (per latent), decoder rows (per input coordinate)
    torch.testing.assert_close(sae.W_enc.norm(dim=1), torch.ones(16))
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(32))
    per_latent, _ = train_sae(x, d_sae=16, epochs=20, seed=0, decoder_norm="latent")
    torch.testing.assert_close(per_latent.W_dec.norm(dim=0), torch.ones(16))


def test_sae_loss_is_the_official_loss_fn():
    """Official src/train.py: F.mse_loss(x_hat, x) + lambda * mean_rows(||f||_1 over latents),
    written out with numpy on a hand-sized batch; the old mean-over-latents penalty was
    d_sae times weaker."""
    from interp.sae import DiscreteCodeSAE, sae_loss

    torch.manual_seed(0)
    sae = DiscreteCodeSAE(6, 5)
    x = torch.randn(4, 6)
    f, x_hat = sae(x)
    fn, xn, hn = f.detach().numpy(), x.numpy(), x_hat.detach().numpy()
    want = ((hn - xn) ** 2).mean() + 0.02 * np.abs(fn).sum(axis=1).mean()
    assert float(sae_loss(x, f, x_hat, 0.02).detach()) == pytest.approx(want, rel=1e-6)
    old = ((hn - xn) ** 2).mean() + 0.02 * np.abs(fn).mean()
    assert abs(fn).sum() > 0 and float(sae_loss(x, f, x_hat, 0.02).detach()) != pytest.approx(old)


def test_sae_initialisation_follows_the_official_code():
    """Tied bias at zeros (official geometric_median_dataset=None), encoder bias uniform in
    +-1/sqrt(d_in) like nn.Linear, unit-norm rows."""
    from interp.sae import DiscreteCodeSAE

    sae = DiscreteCodeSAE(64, 200)
    assert (sae.b_dec == 0).all()
    assert sae.b_enc.abs().max() <= 1 / 8 and sae.b_enc.std() > 0.03
    torch.testing.assert_close(sae.W_enc.norm(dim=1), torch.ones(200))
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(64))
    with pytest.raises(InputError, match="decoder_norm"):
        DiscreteCodeSAE(4, 3, decoder_norm="columns")


def test_node_and_edge_scores_hand_computed():
    # 4 examples (2 positive, 2 negative) x 3 heads
    codes = np.array(
        [
            [1, 5, 7],  # positive
            [2, 5, 8],  # positive
            [1, 6, 7],  # negative
            [3, 6, 9],  # negative
        ]
    )
    positive = np.array([True, True, False, False])
    # head 0: {1,2} - {1,3} = {2}; head 1: {5} - {6} = {5}; head 2: {7,8} - {7,9} = {8}
    assert node_scores(codes, positive).tolist() == [1, 1, 1]
    # normalised: head 0: 1 / |{1,2,3}| ; head 1: 1 / |{5,6}| ; head 2: 1 / |{7,8,9}|
    np.testing.assert_allclose(node_scores(codes, positive, normalise=True), [1 / 3, 1 / 2, 1 / 3])
    e = edge_scores(codes, positive)
    # pairs on positives (h0,h1): (1,5),(2,5); negatives (1,6),(3,6) -> 2
    # (h0,h2): (1,7),(2,8) vs (1,7),(3,9) -> 1 ; (h1,h2): (5,7),(5,8) vs (6,7),(6,9) -> 2
    assert e[0, 1] == 2 and e[0, 2] == 1 and e[1, 2] == 2
    assert (np.tril(e) == 0).all()


def test_save_load_round_trip(tmp_path):
    x = torch.randn(50, 12)
    sae, _ = train_sae(x, d_sae=10, epochs=5)
    save_sae(sae, tmp_path / "sae", {"task": "test"})
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    assert cfg["d_in"] == 12 and cfg["d_sae"] == 10 and cfg["apply_b_dec_to_input"]
    back = load_sae(tmp_path / "sae")
    torch.testing.assert_close(back.encode(x), sae.encode(x))
    with pytest.raises(InputError):
        load_sae(tmp_path / "missing")
    with pytest.raises(InputError):
        train_sae(torch.randn(1, 4))
