"""Small transformers trained in the project with dot-product (DPA) or expressive attention (EA).

``train_toy(attention="ea", task="recall", complexity=4, seed=0)`` trains a Llama-style model
(2 layers, 4 heads, d_model 64 by default: seconds to minutes on a CPU) on fresh samples of a
task from ``circuits.tasks.complexity``, evaluates accuracy on held-out sequences and saves a
Hugging Face model folder (safetensors + tokenizer + ``metrics.json``). ``interp.load_model`` on
that folder returns a bridged model whose hooks, detectors and dashboard views see the model's
own attention (EA included: ``interp.models.expressive``).

Both attentions use the same architecture, initialisation seed, data stream and optimiser; only
the scoring differs.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from tqdm.auto import tqdm
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from circuits.head_plan import head_plan_hooks
from circuits.tasks import complexity as tasks
from interp.errors import InputError
from interp.models import expressive
from interp.report import write_json, write_text


@dataclass
class ToyConfig:
    attention: str = "ea"
    task: str = "recall"
    complexity: int = 4
    seed: int = 0
    steps: int = 1500
    batch_size: int = 64
    lr: float = 3e-3
    warmup: int = 100
    n_layers: int = 2
    n_heads: int = 4
    d_head: int = 16
    n_eval: int = 1000
    attn_only: bool = False  # MLPs zeroed and frozen: every mechanism lives in the heads
    # token embeddings renormalised to their initial mean norm after every step: a head cannot be
    # silenced at some tokens by shrinking their embeddings (the final RMSNorm would scale its
    # write up there and down elsewhere); see circuits.planted_sinks
    embed_norm: bool = False
    # MLP hidden width (0: 4 x d_model). An attention-only model computes its zeroed MLPs
    # anyway; width 1 makes training ~3x faster with the same (zero) MLP output
    mlp_width: int = 0
    # planted head roles (``mixture`` only): sub-task -> heads [[layer, head], ...] that may
    # carry it. On a sequence of that sub-task every other head learns nothing from its loss
    # (its output is detached) and is dropped (zeroed) with probability ``head_drop``, so the
    # sub-task can neither train it nor rely on it (circuits.planted_mixture); the saved model
    # is an ordinary Llama
    head_plan: dict = field(default_factory=dict)
    head_drop: float = 0.0
    head_detach: bool = False  # the heads outside a row's plan learn nothing from it
    # weight of a penalty on the mean squared write ||z W_O||^2 of the heads outside a row's
    # plan: they learn to stay quiet on other sub-tasks instead of becoming their backups
    head_quiet: float = 0.0
    # weight of the loudness penalty of the heads in no plan (loud distractors that write as
    # much as the planned heads and carry nothing; circuits.head_plan)
    head_loud: float = 0.0
    extra: dict = field(default_factory=dict)

    def check(self) -> ToyConfig:
        if self.attention not in expressive.KINDS:
            raise InputError(f"attention must be one of {expressive.KINDS}, not {self.attention!r}")
        names = tasks.parse_tasks(self.task)
        tasks.check_complexity(names, self.complexity)
        for name in ("steps", "batch_size", "n_layers", "n_heads", "d_head", "n_eval"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise InputError(f"lr must be a finite number > 0, got {self.lr}")
        if self.head_quiet < 0 or self.head_loud < 0:
            raise InputError("head_quiet and head_loud are penalty weights: use numbers >= 0")
        if not 0.0 <= self.head_drop < 1.0:
            raise InputError(f"head_drop must be in [0, 1), got {self.head_drop}")
        return self


def toy_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level tokenizer over ``circuits.tasks.complexity.VOCAB`` (space-separated words)."""
    backend = Tokenizer(models.WordLevel(vocab=dict(tasks.INDEX), unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>"
    )


def build_model(cfg: ToyConfig) -> LlamaForCausalLM:
    d_model = cfg.n_heads * cfg.d_head
    config = LlamaConfig(
        vocab_size=len(tasks.VOCAB),
        hidden_size=d_model,
        intermediate_size=cfg.mlp_width or 4 * d_model,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_heads,
        head_dim=cfg.d_head,
        max_position_embeddings=128,
        pad_token_id=tasks.PAD,
        bos_token_id=tasks.INDEX["<bos>"],
        eos_token_id=tasks.INDEX["<eos>"],
        tie_word_embeddings=False,
    )
    config.interp_attention = cfg.attention
    impl = expressive.ATTN_NAME if cfg.attention == "ea" else "eager"
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(config)
    model.config._attn_implementation = impl
    for layer in model.model.layers:
        layer.self_attn.config._attn_implementation = impl
        if cfg.attn_only:  # the MLP adds exactly 0 to the residual stream
            for p in layer.mlp.parameters():
                p.data.zero_()
                p.requires_grad_(False)
    return model


def _loss_and_acc(model, batch: tasks.Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    logits = model(input_ids=batch.ids, attention_mask=batch.attention_mask).logits
    pred_logits = logits[:, :-1]  # position t-1 predicts token t
    target = batch.ids[:, 1:]
    scored = batch.scored[:, 1:]
    loss = torch.nn.functional.cross_entropy(pred_logits[scored], target[scored])
    correct = (pred_logits.argmax(-1) == target) & scored
    return loss, correct.sum(), scored.sum()


@torch.no_grad()
def evaluate(model, cfg: ToyConfig, seed_offset: int = 10_000_000) -> float:
    """Accuracy on ``n_eval`` held-out sequences (a data seed never used in training)."""
    model.eval()
    batch = tasks.sample(cfg.task, cfg.complexity, cfg.n_eval, cfg.seed + seed_offset)
    _, correct, total = _loss_and_acc(model, batch)
    return float(correct / total)


def _embedding_norm_keeper(model: LlamaForCausalLM):
    """A function that puts every token embedding back to the initial mean row norm."""
    weight = model.model.embed_tokens.weight
    norm = float(weight.detach().norm(dim=-1).mean())

    @torch.no_grad()
    def keep() -> None:
        weight.mul_(norm / weight.norm(dim=-1, keepdim=True))

    keep()
    return keep


def train_toy(
    cfg: ToyConfig, out: Path | None = None, *, progress: bool = True
) -> tuple[LlamaForCausalLM, dict]:
    """Train, evaluate and (with ``out``) save; returns the model and its metrics."""
    cfg.check()
    model = build_model(cfg)
    trained = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=cfg.lr, weight_decay=0.01)

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return 0.5 * (1 + math.cos(math.pi * frac))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    keep_norm = _embedding_norm_keeper(model) if cfg.embed_norm else (lambda: None)
    t0 = time.perf_counter()
    losses = []
    bar = tqdm(
        range(cfg.steps),
        desc=f"train {cfg.attention} {cfg.task} c={cfg.complexity}",
        disable=not progress,
        leave=False,
    )
    set_batch, penalty, remove_dropout = (
        head_plan_hooks(model, cfg)
        if cfg.head_plan
        else (lambda b, g: None, lambda: 0.0, lambda: None)
    )
    drop_rng = torch.Generator().manual_seed(cfg.seed)
    model.train()
    for step in bar:
        batch = tasks.sample(cfg.task, cfg.complexity, cfg.batch_size, cfg.seed * 1_000_003 + step)
        set_batch(batch, drop_rng)
        loss, correct, total = _loss_and_acc(model, batch)
        opt.zero_grad(set_to_none=True)
        (loss + penalty()).backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        opt.step()
        sched.step()
        keep_norm()
        losses.append(float(loss.detach()))
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss:.3f}", acc=f"{float(correct / total):.2f}")
    remove_dropout()
    seconds = time.perf_counter() - t0
    acc = evaluate(model, cfg)
    metrics = {
        "config": asdict(cfg),
        "accuracy": acc,
        "chance": tasks.chance(cfg.task),
        "final_loss": float(sum(losses[-50:]) / len(losses[-50:])),
        "first_loss": losses[0],
        "train_seconds": round(seconds, 2),
        "n_parameters": sum(p.numel() for p in model.parameters()),
    }
    if out is not None:
        save_toy(model, Path(out), metrics)
    return model.eval(), metrics


def save_toy(model: LlamaForCausalLM, out: Path, metrics: dict) -> Path:
    """A Hugging Face folder ``interp.load_model`` reads; ``metrics.json`` is written last."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    toy_tokenizer().save_pretrained(out)
    cfg = metrics["config"]
    held_out = tasks.sample(cfg["task"], cfg["complexity"], 16, seed=cfg["seed"] + 20_000_000)
    # task sequences as prompts (one per line): `interp dashboard` computes head statistics on them
    write_text("\n".join(tasks.to_text(r) for r in held_out.ids.tolist()), out / "prompts.txt")
    write_json(metrics, out / "metrics.json")
    return out


def load_metrics(out: Path) -> dict | None:
    path = Path(out) / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None
