"""Commands on text through a model: calibrate (ACT head search), generate, anchors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from interp import checks
from interp.cli.common import (
    ModelArg,
    _load,
    app,
    check_model_arg,
    console,
    out,
)
from interp.errors import InputError
from interp.known_models import DEFAULT_MODEL


@app.command()
def calibrate(
    model: ModelArg = DEFAULT_MODEL,
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset",
            "--task",  # the former name, still accepted
            help="Bundled multiple-choice dataset (sentiment, topic, yes_no, arithmetic, "
            "commonsense), a group pooling bundled datasets (classification, multiple_choice), "
            "or a JSONL file used as the calibration split.",
        ),
    ] = "sentiment",
    test: Annotated[
        Path | None, typer.Option(help="Test split JSONL (default: the bundled test split).")
    ] = None,
    out_file: Annotated[
        Path, typer.Option("--out", help="Where to save the config (JSON).")
    ] = Path("runs/calibration.json"),
    first_layer: Annotated[int, typer.Option(min=0, help="Search heads from this layer on.")] = 2,
    random_sets: Annotated[
        int, typer.Option(min=0, max=200, help="Random head sets of the chosen size (control).")
    ] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the folds, sign flips and random sets.")] = 0,
) -> None:
    """Search heads whose sink calibration (ACT) reliably raises the correct choice's margin
    (permutation screen + Benjamini-Hochberg, 5-fold cross-validation, stability gate); save
    the config (no heads when nothing is reliable); report test accuracy before/after with 95 %
    intervals beside random head sets of the same size."""
    from interp.calibration_search import (
        SearchOptions,
        evaluate,
        load_dataset,
        members,
        pooled_rows,
        search_heads,
    )  # fmt: skip

    checks.out_file(out_file)
    bundled = not dataset.endswith(".jsonl")
    if bundled:
        cal_rows = pooled_rows(dataset, "calibration")
        tests = {name: pooled_rows(name, "test") for name in members(dataset)}
        files = {"dataset": dataset, "pooled_datasets": list(members(dataset))}
    else:
        if test is None:
            raise InputError("give --test FILE for a dataset file of your own")
        cal_rows = load_dataset(Path(dataset))
        tests = {test.stem: load_dataset(test)}
        files = {"dataset": dataset, "calibration_file": dataset, "test_file": str(test)}
    if test is not None and bundled:
        tests = {test.stem: load_dataset(test)}
    m = _load(model)
    options = SearchOptions(first_layer=first_layer, seed=seed)
    result = search_heads(m, cal_rows, options=options, provenance=files)
    results = [
        evaluate(
            m, result.config, name, rows, random_sets=random_sets, first_layer=first_layer,
            seed=seed, progress=True,
        )
        for name, rows in tests.items()
    ]  # fmt: skip
    prov = result.config.provenance
    if len(results) == 1:
        prov.update(results[0].summary())
    else:
        prov["tests"] = {r.name: r.summary() for r in results}
    prov["search_seconds"] = result.seconds
    result.config.save(out_file)
    import pandas as pd

    from interp.report import write_table

    write_table(pd.DataFrame(result.per_head), out_file.with_suffix(".heads.parquet"))
    _print_calibration(dataset, result, results, len(cal_rows), out_file)


def _print_calibration(dataset, result, results, n_cal: int, out_file: Path) -> None:
    from interp.calibration_stats import wilson

    cv = result.cv
    verdict = result.config.provenance.get("verdict", "")
    table = Table(
        "split", "before", "after", "after - before [95 % CI]",
        title=f"{dataset}: {verdict}, {len(result.config.heads)} heads saved",
    )  # fmt: skip
    if cv:
        lo, hi = cv["held_out_accuracy_gain_ci95"]
        table.add_row(
            f"calibration, cross-validated (n={n_cal})",
            f"{cv['held_out_accuracy_before']:.3f}",
            f"{cv['held_out_accuracy_after']:.3f}",
            f"{cv['held_out_accuracy_after'] - cv['held_out_accuracy_before']:+.3f} "
            f"[{lo:+.3f}, {hi:+.3f}]",
        )
    for r in results:
        n = len(r.before)
        b_lo, b_hi = wilson(int(r.before.sum()), n)
        a_lo, a_hi = wilson(int(r.after.sum()), n)
        lo, hi = r.interval
        table.add_row(
            f"test {r.name} (n={n})",
            f"{r.before.mean():.3f} [{b_lo:.3f}, {b_hi:.3f}]",
            f"{r.after.mean():.3f} [{a_lo:.3f}, {a_hi:.3f}]",
            f"{r.gain:+.3f} [{lo:+.3f}, {hi:+.3f}]",
        )
    out.print(table)
    if not result.significant:
        cand = result.stable_heads
        out.print(
            "no reliable gain: no head set passed the gate (screen: "
            f"{cv.get('screen_kept_all_data', 0)} heads kept by Benjamini-Hochberg at 5 %; "
            f"{len(cand)} chosen in >= 4 of 5 folds; cross-validated margin gain "
            f"{cv.get('held_out_margin_gain', 0.0):+.3f}). The config saves no heads"
            + (f" (candidates kept in its provenance: {_names(cand)})." if cand else ".")
        )
    for r in results:
        s = r.summary()
        if "random_sets" in s:
            rs = s["random_sets"]
            out.print(
                f"{r.name}: gain {r.gain:+.3f} is at the {rs['percentile_of_chosen']:.0f}th "
                f"percentile of {rs['n']} random sets of {len(result.config.heads)} heads "
                f"(95th: {rs['p95']:+.3f}); calibrated anything on {s['share_calibrated']:.0%} "
                "of the inputs"
            )
        pw = s["power"]
        out.print(
            f"{r.name}: with n={pw['n']} a {pw['effect']:.0%} gain is detectable (80 % power) "
            f"if at most {pw['max_share_changed']:.1%} of the answers change"
        )
    out.print(f"search {result.seconds:.0f} s; saved {out_file}")


def _names(heads) -> str:
    return ", ".join(f"L{la}.H{h}" for la, h in heads)


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="Prompt text.")],
    model: Annotated[
        str, typer.Option(help="Model name or folder.", callback=check_model_arg)
    ] = DEFAULT_MODEL,
    calibration: Annotated[
        Path | None, typer.Option(help="Calibration config JSON from `interp calibrate`.")
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1, max=512)] = 40,
    compare: Annotated[
        bool,
        typer.Option(
            help="With --calibration, also decode without it and say where the texts part."
        ),
    ] = True,
    recompute: Annotated[
        bool,
        typer.Option(
            help="With --calibration, recompute the whole sequence at every step (ACT's sink "
            "sets over the whole text so far for every row; slower) instead of the KV cache."
        ),
    ] = False,
) -> None:
    """Greedy generation (streamed), optionally with a saved sink calibration applied."""
    from interp.calibration import (
        CalibrationConfig,
        apply_calibration,
        cached_calibration_hooks,
    )
    from interp.generate import greedy_decode

    config = CalibrationConfig.load(calibration) if calibration else None
    m = _load(model)
    ids = m.tokenizer(prompt)["input_ids"]
    if len(ids) < 2:
        raise InputError("the prompt needs at least 2 tokens")
    n_ctx = int(m.cfg.n_ctx)
    if len(ids) + max_new_tokens > n_ctx:
        raise InputError(
            f"the prompt has {len(ids)} tokens; with --max-new-tokens {max_new_tokens} that "
            f"exceeds {model}'s context of {n_ctx} tokens: shorten it"
        )
    if config is not None and not config.heads:
        why = config.provenance.get("verdict", "")
        why = f" ({why}: the search found no head set worth shipping)" if why else ""
        console.print(f"{calibration} selects no heads{why}: this is the plain model's text")
        config = None
    if config is not None:
        heads = ", ".join(f"L{la}.H{h}" for la, h in sorted(config.heads))
        how = "recomputing the sequence at every step" if recompute else "with the KV cache"
        console.print(
            f"calibrating {len(config.heads)} head(s) {heads} (beta {config.beta}, sink "
            f"s_j > {config.threshold}), {how}"
        )
    eos = m.tokenizer.eos_token_id
    new: list[int] = []
    out.print(prompt, end="")

    def show(token: int) -> None:  # stream the text as it grows (byte-level BPE safe)
        before = m.tokenizer.decode(new, skip_special_tokens=True)
        new.append(token)
        out.print(m.tokenizer.decode(new, skip_special_tokens=True)[len(before) :], end="")

    cached = config is not None and not recompute
    handle = apply_calibration(m, config) if config is not None and recompute else None
    try:
        greedy_decode(
            m, ids, max_new_tokens=max_new_tokens, stop=lambda t: t == eos, on_step=show,
            use_cache=not recompute, fwd_hooks=cached_calibration_hooks(m, config)
            if cached and config is not None else (),
        )  # fmt: skip
    finally:
        if handle is not None:
            handle.remove()
    out.print()
    if config is not None and compare:
        plain = greedy_decode(m, ids, max_new_tokens=max_new_tokens, stop=lambda t: t == eos)
        console.print(_calibration_effect(m.tokenizer, new, plain))


def _calibration_effect(tokenizer, calibrated: list[int], plain: list[int]) -> str:
    """One line: whether the calibration changed the greedy continuation, and where."""
    if calibrated == plain:
        return f"without the calibration: the same {len(plain)} tokens (it changed nothing here)"
    k = next((i for i, (a, b) in enumerate(zip(calibrated, plain, strict=False)) if a != b), None)
    k = min(len(calibrated), len(plain)) if k is None else k
    rest = tokenizer.decode(plain[k:], skip_special_tokens=True)
    return f"without the calibration the text parts at new token {k + 1}: ...{rest!r}"


@app.command()
def anchors(
    text: Annotated[str, typer.Argument(help="Text to analyse (quote it).")],
    model: Annotated[
        str, typer.Option(help="Model name or folder.", callback=check_model_arg)
    ] = DEFAULT_MODEL,
    top: Annotated[int, typer.Option(min=1, help="How many tokens of each kind to print.")] = 10,
) -> None:
    """Preplan (WAAD jumps) and anchor (high FAI) tokens of TEXT (Preplan-and-Anchor)."""
    from interp.heads.anchor import anchor_tokens

    df = anchor_tokens(_load(model), text)
    # each kind ranked by what selects it: FAI for anchors, the WAAD jump for preplan tokens
    for kind, col in (("anchor", "fai"), ("preplan", "waad_jump")):
        chosen = df[df[kind]]
        if kind == "anchor":  # token 0 takes attention as the sink, not as content
            chosen = chosen[chosen.position > 0]
        rows = chosen.sort_values(col, ascending=False).head(top)
        table = Table(
            "position", "token", col,
            title=f"{kind} tokens ({int(df[kind].sum())}), by {col.replace('_', ' ')}",
        )  # fmt: skip
        for r in rows.itertuples():
            table.add_row(str(r.position), repr(r.token), f"{getattr(r, col):.4f}")
        out.print(table)
        if kind == "anchor" and bool(df[kind].iloc[0]):
            out.print(
                f"token 0 {df.token.iloc[0]!r} is an anchor by the paper's rule (FAI "
                f"{df.fai.iloc[0]:.4f}) but it is the attention sink: listed apart, not ranked"
            )
