"""Attention-output TopK SAEs (interp.sae.topk, interp.sae.attention_output): the SAELens
forward on hand-built cases, the SAELens folder layout both ways, training that recovers a
planted sparse dictionary, decoder-norm head shares, and feature attribution patching, which
with a lossless SAE must equal attribution patching of hook_z itself (AtP) head by head."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from interp.errors import InputError
from interp.sae.topk import TopKSAE, load_sae_folder, save_sae_folder, train_topk_sae


def _sae(d_in=4, d_sae=6, k=2, arch="topk", seed=0):
    g = torch.Generator().manual_seed(seed)
    sae = TopKSAE(d_in, d_sae, k, arch)
    with torch.no_grad():
        for p in (sae.W_enc, sae.W_dec, sae.b_enc, sae.b_dec):
            p.copy_(torch.randn(p.shape, generator=g))
    return sae


def test_topk_forward_is_the_saelens_definition_by_hand():
    sae = _sae()
    x = torch.randn(5, 4)
    pre = ((x - sae.b_dec) @ sae.W_enc + sae.b_enc).detach()
    want = torch.zeros_like(pre)
    for r in range(5):
        top = sorted(range(6), key=lambda i: -float(pre[r, i]))[:2]
        for i in top:
            want[r, i] = max(float(pre[r, i]), 0.0)  # ReLU of the kept values
    f = sae.encode(x)
    torch.testing.assert_close(f, want)
    assert int((f != 0).sum(-1).max()) <= 2
    torch.testing.assert_close(sae.decode(f), f @ sae.W_dec + sae.b_dec)


def test_saved_folder_is_the_saelens_layout_and_loads_back(tmp_path):
    sae = _sae(8, 16, 3)
    folder = save_sae_folder(sae, tmp_path / "blocks.2.attn.hook_z", {"hook_layer": 2})
    cfg = json.loads((folder / "cfg.json").read_text())
    assert cfg["architecture"] == "topk" and cfg["activation_fn_kwargs"] == {"k": 3}
    assert cfg["d_in"] == 8 and cfg["d_sae"] == 16 and cfg["apply_b_dec_to_input"] is True
    back = load_sae_folder(folder)
    x = torch.randn(7, 8)
    torch.testing.assert_close(back.encode(x), sae.encode(x))
    torch.testing.assert_close(back(x)[1], sae(x)[1])


def test_a_saelens_standard_sae_without_b_dec_on_input_loads_as_saelens_runs_it(tmp_path):
    """A folder as SAELens writes a ReLU SAE with apply_b_dec_to_input false: f = ReLU(x W_enc
    + b_enc), x_hat = f W_dec + b_dec."""
    g = torch.Generator().manual_seed(1)
    t = {"W_enc": torch.randn(4, 5, generator=g), "W_dec": torch.randn(5, 4, generator=g),
         "b_enc": torch.randn(5, generator=g), "b_dec": torch.randn(4, generator=g)}  # fmt: skip
    save_file(t, str(tmp_path / "sae_weights.safetensors"))
    cfg = {"architecture": "standard", "d_in": 4, "d_sae": 5, "activation_fn_str": "relu",
           "apply_b_dec_to_input": False, "hook_name": "blocks.0.attn.hook_z"}  # fmt: skip
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    sae = load_sae_folder(tmp_path)
    x = torch.randn(6, 4)
    f = torch.relu(x @ t["W_enc"] + t["b_enc"])
    torch.testing.assert_close(sae.encode(x), f, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sae.decode(f), f @ t["W_dec"] + t["b_dec"])
    cfg["d_sae"] = 9
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="W_enc should be"):
        load_sae_folder(tmp_path)
    with pytest.raises(InputError, match="SAELens layout"):
        load_sae_folder(tmp_path / "missing")


def test_training_recovers_a_planted_sparse_dictionary():
    """x = 2 of 24 unit atoms per row (positive coefficients): a 24-latent TopK SAE with k = 2
    reconstructs it and its dictionary vectors match the atoms."""
    g = torch.Generator().manual_seed(0)
    atoms = torch.nn.functional.normalize(torch.randn(24, 16, generator=g), dim=1)
    idx = torch.stack([torch.randperm(24, generator=g)[:2] for _ in range(6000)])
    coef = 1 + torch.rand(6000, 2, generator=g)
    x = (coef[..., None] * atoms[idx]).sum(1)
    sae, stats = train_topk_sae(x, d_sae=24, k=2, epochs=40, batch_size=256, lr=3e-3)
    assert stats["fvu"] < 0.1, stats
    cos = (torch.nn.functional.normalize(sae.W_dec, dim=1) @ atoms.T).max(0).values
    assert float((cos > 0.9).float().mean()) >= 0.75, cos
    assert 1.5 <= stats["l0"] <= 2.0


def test_head_shares_are_decoder_norm_fractions_per_head_block():
    sae = TopKSAE(4, 2, 1)
    with torch.no_grad():
        sae.W_dec.copy_(torch.tensor([[3.0, 0.0, 0.0, 4.0], [1.0, 1.0, 0.0, 0.0]]))
    shares = sae.head_shares(2)  # head 0: coords 0-1, head 1: coords 2-3
    torch.testing.assert_close(shares, torch.tensor([[9 / 25, 16 / 25], [1.0, 0.0]]))
    with pytest.raises(InputError, match="multiple"):
        sae.head_shares(3)


def _lossless(d_in: int) -> TopKSAE:
    """ReLU SAE with latents +e_i and -e_i: f = [relu(z), relu(-z)], decodes z exactly, and
    each latent lies in one head's block."""
    sae = TopKSAE(d_in, 2 * d_in, None, "standard")
    eye = torch.eye(d_in)
    with torch.no_grad():
        sae.W_dec.copy_(torch.cat([eye, -eye]))
        sae.W_enc.copy_(torch.cat([eye, -eye]).T)
    return sae


def test_feature_attribution_of_a_lossless_sae_equals_atp_of_z_and_of_patterns(tiny):
    from interp.ablation.attribution import pattern_attribution, z_attribution, z_cache
    from interp.ablation.uniform import hide_first_key
    from interp.sae.attention_output import (
        feature_attribution,
        pattern_delta,
        z_delta,
    )

    n_layers = int(tiny.cfg.n_layers)
    d_in = int(tiny.cfg.n_heads) * int(tiny.cfg.d_head)
    saes = {la: _lossless(d_in) for la in range(n_layers)}
    clean = tiny.to_tokens(["The dog ran to the park and back", "A cat sat on the warm mat ok"])
    corrupt = clean.roll(1, 0)

    def metric(logits):
        return logits[:, -1].log_softmax(-1)[:, 5].mean()

    heads, per_latent = feature_attribution(
        tiny, saes, clean, None, metric, z_delta(z_cache(tiny, corrupt, None, range(n_layers)))
    )
    atp = z_attribution(tiny, clean, corrupt, None, metric)
    torch.testing.assert_close(heads, atp.estimate, rtol=1e-4, atol=1e-6)
    assert sorted(per_latent) == list(range(n_layers))
    assert heads.abs().sum() > 0

    keep, delta = pattern_delta(hide_first_key)
    heads_p, _ = feature_attribution(tiny, saes, clean, None, metric, delta, keep)
    atp_p = pattern_attribution(tiny, clean, None, metric, hide_first_key)
    torch.testing.assert_close(heads_p, atp_p.estimate, rtol=1e-4, atol=1e-6)


def test_attention_saes_train_save_resume_and_load(tiny, tmp_path):
    from interp.inputs.text import haystack_windows
    from interp.sae.attention_output import load_attention_saes, train_attention_saes

    batch = haystack_windows(tiny, 32, 6)
    stats = train_attention_saes(tiny, [1], tmp_path, batch, expansion=2, k=4, epochs=2,
                                 progress=False)  # fmt: skip
    assert set(stats) == {1} and 0 <= stats[1]["fvu"] < 1.5
    folder = tmp_path / "blocks.1.attn.hook_z"
    mtime = (folder / "sae_weights.safetensors").stat().st_mtime_ns
    again = train_attention_saes(tiny, [1], tmp_path, batch, expansion=2, k=4, epochs=2,
                                 progress=False)  # fmt: skip
    assert again == stats  # kept, not retrained
    assert (folder / "sae_weights.safetensors").stat().st_mtime_ns == mtime
    saes = load_attention_saes(tmp_path, tiny)
    assert list(saes) == [1] and saes[1].k == 4
    assert saes[1].d_sae == 2 * int(tiny.cfg.n_heads) * int(tiny.cfg.d_head)
    with pytest.raises(InputError, match="no attention-output SAE"):
        load_attention_saes(tmp_path / "empty", tiny)


@pytest.mark.parametrize(
    "family,options",
    [("sink", {"n_tokens": 24}), ("anchor", {"n_tokens": 32, "n_windows": 2, "near": 4})],
)
def test_family_score_of_a_lossless_sae_equals_the_causal_estimate(tiny, family, options):
    """The SAE family score uses the causal role score's own contrast: with the lossless SAE it
    equals that detector's attribution estimate head by head."""
    from interp.heads import get_detector
    from interp.heads.base import configure
    from interp.sae.family_scores import FAMILY_DETECTORS, sae_family_scores

    d_in = int(tiny.cfg.n_heads) * int(tiny.cfg.d_head)
    saes = {la: _lossless(d_in) for la in range(int(tiny.cfg.n_layers))}
    got = sae_family_scores(tiny, saes, family, **options)
    detector = get_detector(FAMILY_DETECTORS[family])
    want = detector.measure(tiny, configure(detector, None, **options)).estimate
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    assert got.abs().sum() > 0
    with pytest.raises(InputError, match="unknown head family"):
        sae_family_scores(tiny, saes, "induction")


def test_integrated_gradients_of_a_lossless_sae_equal_those_of_the_heads(tiny):
    """steps > 1: the joint-path integrated gradients of the lossless SAE equal
    ``pattern_attribution(..., steps)`` head by head."""
    from interp.ablation.attribution import pattern_attribution
    from interp.ablation.uniform import hide_first_key
    from interp.sae.attention_output import feature_attribution, pattern_delta

    d_in = int(tiny.cfg.n_heads) * int(tiny.cfg.d_head)
    saes = {la: _lossless(d_in) for la in range(int(tiny.cfg.n_layers))}
    clean = tiny.to_tokens(["The dog ran to the park and back", "A cat sat on the warm mat ok"])

    def metric(logits):
        return logits[:, -1].log_softmax(-1)[:, 5].mean()

    keep, delta = pattern_delta(hide_first_key)
    got, _ = feature_attribution(tiny, saes, clean, None, metric, delta, keep, steps=4)
    want = pattern_attribution(tiny, clean, None, metric, hide_first_key, steps=4).estimate
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    one, _ = feature_attribution(tiny, saes, clean, None, metric, delta, keep, steps=1)
    assert not torch.allclose(got, one)  # the path changes the estimate
