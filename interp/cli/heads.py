"""Commands on a model's heads: models, info, scan, validate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from interp import checks
from interp.cli.common import (
    ModelArg,
    _load,
    app,
    console,
    out,
)
from interp.errors import InputError
from interp.known_models import DEFAULT_MODEL


@app.command()
def models() -> None:
    """List the known model names (all load offline)."""
    from interp.known_models import KNOWN_MODELS

    table = Table("name", "what")
    for name, what in KNOWN_MODELS.items():
        table.add_row(name, what)
    out.print(table)


@app.command()
def info(
    model: ModelArg = DEFAULT_MODEL,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print layers, heads, kv heads, d_head, context length and parameter count of MODEL."""
    from interp.models import model_info

    facts = model_info(_load(model))
    if as_json:
        out.print_json(json.dumps(facts.as_dict()))
        return
    table = Table("property", "value", title=f"{model}")
    rows = [
        ("architecture", facts.architecture),
        ("layers", facts.n_layers),
        ("heads", facts.n_heads),
        ("kv heads", facts.n_kv_heads),
        ("d_head", facts.d_head),
        ("d_model", facts.d_model),
        ("context length", facts.n_ctx),
        ("parameters", f"{facts.n_params:,}"),
        ("vocabulary", facts.d_vocab),
        ("attention", facts.attention),
    ]
    for k, v in rows:
        table.add_row(k, str(v))
    out.print(table)


@app.command()
def scan(
    model: ModelArg = DEFAULT_MODEL,
    out_dir: Annotated[Path, typer.Option("--out", help="Run folder to write (resumable).")] = Path(
        "runs/scan"
    ),
    prompts: Annotated[
        Path | None,
        typer.Option(
            help="Prompt file, one prompt per line ('\\n' = newline), for the per-head attention "
            "statistics table (entropy, distances, sink mass); the detectors keep their own "
            "inputs (text windows, needle tests, repeated tokens). Default: the model folder's "
            "prompts.txt if it has one (toy models), else the bundled prompts."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Prompts per forward pass.")] = 4,
    detectors: Annotated[
        str,
        typer.Option(
            help="Comma-separated detectors to run; 'default' (the attention detectors), 'all' "
            "(with the causal role scores sink_need, retrieval_effect, anchor_effect: slow) "
            "or 'none'."
        ),
    ] = "default",
    grid: Annotated[
        str,
        typer.Option(help="Retrieval needle grid: 'small' (CPU minutes) or 'large' (to 8k)."),
    ] = "small",
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="DETECTOR.OPTION=VALUE, repeatable (e.g. sink.n_tokens=128, "
            "anchor.layers=[3,4]): a field of the detector's Config; recorded in the manifest "
            "and part of the table's cache key.",
        ),
    ] = None,
) -> None:
    """Attention statistics and all head detectors of MODEL, written as a resumable run folder."""
    from interp.known_models import BUILTIN_DETECTORS

    if detectors not in ("default", "all", "none"):
        _detector_names(detectors, (), BUILTIN_DETECTORS)
    from interp.heads import REGISTRY
    from interp.inputs.prompts import load_prompts
    from interp.runs.scan import DEFAULT_DETECTORS
    from interp.runs.scan import scan as run_scan

    checks.out_folder(out_dir)
    if prompts is not None:
        load_prompts(prompts)  # a missing, empty or binary file fails before the model loads
    names = _detector_names(detectors, DEFAULT_DETECTORS, REGISTRY)
    if grid not in ("small", "large"):
        raise InputError(f"unknown grid {grid!r}: use 'small' or 'large'")
    options = detector_settings(settings or [], names)
    result = run_scan(
        _load(model),
        out_dir,
        prompts_file=prompts,
        batch_size=batch_size,
        detectors=names,
        grid=grid,
        options=options,
    )
    state = "reused" if result.reused else f"computed in {result.seconds:.1f} s"
    out.print(f"head table {state}; detectors: {', '.join(result.detectors) or 'none'}")
    out.print(f"wrote {result.out}/ (summary.md, manifest.json, detectors/, detectors.png/.html)")
    out.print((result.out / "summary.md").read_text())


def detector_settings(items: list[str], names: list[str]) -> dict[str, dict]:
    """``--set DETECTOR.OPTION=VALUE`` items as {detector: {option: value}}; a VALUE is read as
    JSON (numbers, true/false/null, [lists]) and otherwise taken as text. Each is checked
    against the detector's Config before any model loads."""
    from interp.heads import get_detector
    from interp.heads.base import configure

    options: dict[str, dict] = {}
    for item in items:
        key, eq, raw = item.partition("=")
        name, dot, option = key.strip().partition(".")
        if not (eq and dot and option):
            raise InputError(f"--set {item!r}: write DETECTOR.OPTION=VALUE, e.g. sink.n_tokens=128")
        if name not in names:
            raise InputError(f"--set {item!r}: detector {name!r} is not in this scan ({names})")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        options.setdefault(name, {})[option.strip()] = value
    for name, opts in options.items():
        configure(get_detector(name), **opts)
    return options


def _detector_names(spec: str, default, registry) -> list[str]:
    if spec == "default":
        return list(default)
    if spec == "all":
        return list(registry)
    if spec == "none":
        return []
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise InputError(f"unknown detector(s) {unknown}; available: {', '.join(sorted(registry))}")
    return names


@app.command()
def validate(
    model: ModelArg = DEFAULT_MODEL,
    detector: Annotated[
        str, typer.Option(help="retrieval, sink or induction (the heads to mask).")
    ] = "retrieval",
    out_dir: Annotated[
        Path,
        typer.Option("--out", help="Run folder; a scan's detector table there is reused."),
    ] = Path("runs/scan"),
    k: Annotated[
        int | None, typer.Option(min=1, help="Heads to mask (default 5 % of all heads).")
    ] = None,
    draws: Annotated[
        int, typer.Option(min=2, help="Random head sets per control (20: the least for p < 0.05).")
    ] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the random head draws.")] = 0,
) -> None:
    """Mask the top-K heads of a detector (uniform attention) vs K random heads; report drops."""
    from interp.runs.validate import run_validation

    checks.out_folder(out_dir)
    v, paths = run_validation(_load(model), detector, out_dir, k=k, n_draws=draws, seed=seed)
    s = v.summary
    from interp.runs.validate import harm_label

    harm = harm_label(v.metric, s["higher_is_better"])
    table = Table("condition", "k", f"mean {harm}", "std", "min", "max")
    table.add_row("top-K", str(s["k"]), f"{s['top_drop']:.4f}", "", "", "")
    for c in ("random", "random_same_layers"):
        if f"{c}_drop_mean" in s:
            table.add_row(
                f"{c} ({s['n_draws']} draws)",
                str(s["k"]),
                f"{s[f'{c}_drop_mean']:.4f}",
                f"{s[f'{c}_drop_std']:.4f}",
                f"{s[f'{c}_drop_min']:.4f}",
                f"{s[f'{c}_drop_max']:.4f}",
            )
    out.print(f"{detector}: baseline {v.metric} = {s['baseline']:.4f}")
    out.print(table)
    if "control_warning" in s:
        console.print(f"warning: {s['control_warning']}")
    out.print(f"wrote {', '.join(str(p) for p in paths)}")
