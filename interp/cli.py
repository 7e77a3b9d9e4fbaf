"""The ``interp`` command line (typer). Every command has ``--help``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from interp.errors import InterpError

app = typer.Typer(
    help="Mechanistic interpretability of attention heads (offline models, head scans).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

ModelArg = Annotated[
    str,
    typer.Argument(
        help="Known name (smollm2-135m, minilm-l6, tiny), a local HF model folder, or a .gguf file."
    ),
]


def _load(name: str):
    from interp.models import load_model

    with console.status(f"loading {name} (the first load of a GGUF converts it once) ..."):
        return load_model(name)


def _fail(e: Exception) -> None:
    console.print(f"[bold red]error:[/] {e}")
    raise typer.Exit(code=2)


@app.command()
def models() -> None:
    """List the known model names (all load offline)."""
    from interp.models import KNOWN_MODELS

    table = Table("name", "what")
    for name, what in KNOWN_MODELS.items():
        table.add_row(name, what)
    out.print(table)


@app.command()
def info(
    model: ModelArg = "smollm2-135m",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print layers, heads, kv heads, d_head, context length and parameter count of MODEL."""
    from interp.models import model_info

    try:
        facts = model_info(_load(model))
    except InterpError as e:
        _fail(e)
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
    model: ModelArg = "smollm2-135m",
    out_dir: Annotated[Path, typer.Option("--out", help="Run folder to write (resumable).")] = Path(
        "runs/scan"
    ),
    prompts: Annotated[
        Path | None,
        typer.Option(help="Prompt file, one prompt per line ('\\n' = newline). Default: bundled."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Prompts per forward pass.")] = 4,
) -> None:
    """Per-head attention statistics of MODEL over a prompt set, written as a run folder."""
    from interp.scan import scan as run_scan

    try:
        result = run_scan(_load(model), out_dir, prompts_file=prompts, batch_size=batch_size)
    except InterpError as e:
        _fail(e)
    state = "reused" if result.reused else f"computed in {result.seconds:.1f} s"
    out.print(f"head table {state}; wrote {result.out}/ (head_stats.parquet, head_stats.png, ")
    out.print("summary.md, manifest.json)")
    out.print((result.out / "summary.md").read_text())


@app.command("cache-dir")
def cache_dir() -> None:
    """Print the folder where converted models are cached (set INTERP_CACHE_DIR to move it)."""
    from interp.models.cache import cache_root

    out.print(str(cache_root()))


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
