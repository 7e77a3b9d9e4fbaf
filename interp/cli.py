"""The ``interp`` command line (typer). Every command has ``--help``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from interp import checks
from interp.errors import InputError, InterpError

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


SaeEpochs = Annotated[int, typer.Option(min=1, help="SAE training epochs (paper: 500).")]
SaeExamples = Annotated[
    int,
    typer.Option(min=0, help="Examples the SAE trains on (paper: 10; 0 = all); codes use all."),
]


def _version(value: bool | None) -> None:
    if value:
        from interp import __version__

        out.print(f"interp {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = None,
) -> None:
    """Mechanistic interpretability of attention heads (offline models, head scans)."""


def _load(name: str):
    from interp.models import load_model

    with console.status(f"loading {name} (the first load of a GGUF converts it once) ..."):
        model = load_model(name)
    if str(model.cfg.model_name) == "tiny":
        console.print(
            "[yellow]warning:[/] 'tiny' is a randomly initialised model for tests: its scores, "
            "circuits and needle tests mean nothing (needle tests cannot succeed on it)"
        )
    return model


def _fail(e: Exception) -> None:
    console.print(f"[bold red]error:[/] {e}")
    raise typer.Exit(code=2)


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
    detectors: Annotated[
        str,
        typer.Option(help="Comma-separated detectors to run, or 'all' or 'none'."),
    ] = "all",
    grid: Annotated[
        str,
        typer.Option(help="Retrieval needle grid: 'small' (CPU minutes) or 'large' (to 8k)."),
    ] = "small",
) -> None:
    """Attention statistics and all head detectors of MODEL, written as a resumable run folder."""
    from interp.heads import REGISTRY
    from interp.prompts import load_prompts
    from interp.scan import DEFAULT_DETECTORS
    from interp.scan import scan as run_scan

    try:
        checks.out_folder(out_dir)
        if prompts is not None:
            load_prompts(prompts)  # a missing, empty or binary file fails before the model loads
        names = _detector_names(detectors, DEFAULT_DETECTORS, REGISTRY)
        if grid not in ("small", "large"):
            raise InputError(f"unknown grid {grid!r}: use 'small' or 'large'")
        result = run_scan(
            _load(model),
            out_dir,
            prompts_file=prompts,
            batch_size=batch_size,
            detectors=names,
            grid=grid,
        )
    except InterpError as e:
        _fail(e)
    state = "reused" if result.reused else f"computed in {result.seconds:.1f} s"
    out.print(f"head table {state}; detectors: {', '.join(result.detectors) or 'none'}")
    out.print(f"wrote {result.out}/ (summary.md, manifest.json, detectors/, detectors.png/.html)")
    out.print((result.out / "summary.md").read_text())


def _detector_names(spec: str, default, registry) -> list[str]:
    if spec == "all":
        return list(default)
    if spec == "none":
        return []
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise InputError(f"unknown detector(s) {unknown}; available: {', '.join(sorted(registry))}")
    return names


@app.command()
def validate(
    model: ModelArg = "smollm2-135m",
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
    draws: Annotated[int, typer.Option(min=2, help="Random head sets per control.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the random head draws.")] = 0,
) -> None:
    """Mask the top-K heads of a detector (uniform attention) vs K random heads; report drops."""
    from interp.heads.validate import run_validation

    try:
        checks.out_folder(out_dir)
        v, paths = run_validation(_load(model), detector, out_dir, k=k, n_draws=draws, seed=seed)
    except InterpError as e:
        _fail(e)
    s = v.summary
    table = Table("condition", "k", f"mean drop in {v.metric}", "std", "min", "max")
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
    out.print(f"wrote {', '.join(str(p) for p in paths)}")


@app.command()
def circuit(
    tasks: Annotated[
        list[str],
        typer.Argument(
            help="ioi, colored_objects, greater_than, docstring, induction (2+: overlap)."
        ),
    ],
    model: Annotated[str, typer.Option(help="Model name or folder.")] = "smollm2-135m",
    n: Annotated[int, typer.Option(min=2, help="Clean/corrupted prompt pairs per task.")] = 20,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("runs/circuit"),
    fraction: Annotated[
        float, typer.Option(min=0.01, max=0.5, help="Circuit size as a fraction of all heads.")
    ] = 0.1,
    epochs: SaeEpochs = 500,
    sae_examples: SaeExamples = 10,
    seed: Annotated[int, typer.Option(help="Seed of prompts and SAE.")] = 0,
) -> None:
    """Circuit discovery: discrete-code SAE vs exhaustive activation patching of every head."""
    from circuits.run import run_circuits
    from circuits.tasks import check_tasks

    try:
        checks.out_folder(out_dir)
        check_tasks(tasks)
        found, reuse = run_circuits(
            _load(model), tasks, out_dir, n=n, seed=seed, circuit_fraction=fraction,
            sae_epochs=epochs, sae_examples=sae_examples or None,
        )  # fmt: skip
    except InterpError as e:
        _fail(e)
    table = Table("task", "clean LD", "acc", "ROC AUC", "AUC held-out", "P@k", "R@k",
                  "faith. patch", "faith. SAE", "SAE s", "patching s")  # fmt: skip
    for name, d in found.items():
        s = d.summary
        table.add_row(
            name, f"{s['clean_logit_diff']:.2f}", f"{s['clean_accuracy']:.2f}",
            f"{s['roc_auc_sae_vs_patching']:.3f}", f"{s['roc_auc_sae_held_out']:.3f}",
            f"{s['precision_at_k']:.2f}",
            f"{s['recall_at_k']:.2f}", f"{s['faithfulness_patching_circuit']:.2f}",
            f"{s['faithfulness_sae_circuit']:.2f}", f"{s['sae_seconds']:.0f}",
            f"{s['patching_seconds']:.0f}",
        )  # fmt: skip
    out.print(table)
    for pair, o in reuse.items():
        out.print(
            f"overlap {pair}: patching circuits {o['patching']:.0%}, SAE circuits {o['sae']:.0%}"
        )
    out.print(f"wrote {out_dir}/")


@app.command()
def families(
    model: ModelArg = "smollm2-135m",
    run: Annotated[
        Path, typer.Option(help="Run folder of `interp scan` holding the detectors' labels.")
    ] = Path("runs/scan"),
    family: Annotated[
        list[str] | None, typer.Option(help="retrieval, sink, anchor (repeat; default all).")
    ] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("runs/families"),
    epochs: SaeEpochs = 500,
    sae_examples: SaeExamples = 10,
    seed: Annotated[int, typer.Option(help="Seed of the SAE.")] = 0,
) -> None:
    """SAE code discovery of head families (retrieval, sink, anchor) on contrasts built for
    each, scored by ROC AUC against the family detector's labels in the run folder."""
    from circuits.families import FAMILIES, check_families
    from circuits.run import run_families

    try:
        checks.out_folder(out_dir)
        check_families(family or list(FAMILIES), run)  # names and labels before the model loads
        found = run_families(
            _load(model), family or list(FAMILIES), run, out_dir, seed=seed, sae_epochs=epochs,
            sae_examples=sae_examples or None,
        )  # fmt: skip
    except InterpError as e:
        _fail(e)
    table = Table("family", "examples +/-", "detector heads / scored", "ROC AUC", "AUC held-out")
    for name, d in found.items():
        s = d.summary
        table.add_row(
            name, f"{s['n_positive_examples']}/{s['n_negative_examples']}",
            f"{s['n_detector_heads']}/{s['n_heads_scored']}", f"{s['roc_auc']:.3f}",
            f"{s['roc_auc_held_out']:.3f}",
        )  # fmt: skip
    out.print(table)
    out.print(f"wrote {out_dir}/")


@app.command()
def calibrate(
    model: ModelArg = "smollm2-135m",
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
) -> None:
    """Search heads whose sink calibration (ACT) raises accuracy; save the config; report
    test accuracy before/after with 95 % intervals."""
    from interp.calibration_search import (
        evaluate,
        load_dataset,
        members,
        pooled_rows,
        search_heads,
        wilson,
    )  # fmt: skip

    try:
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
        result = search_heads(m, cal_rows, first_layer=first_layer, provenance=files)
        results = [evaluate(m, result.config, name, rows) for name, rows in tests.items()]
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
    except InterpError as e:
        _fail(e)
    table = Table(
        "split", "before", "after", "after - before [95 % CI]",
        title=f"{dataset}: {len(result.config.heads)} heads",
    )  # fmt: skip
    table.add_row(
        f"calibration (n={len(cal_rows)})", f"{result.baseline:.3f}", f"{result.calibrated:.3f}", ""
    )
    for r in results:
        n = len(r.before)
        b_lo, b_hi = wilson(int(r.before.sum()), n)
        a_lo, a_hi = wilson(int(r.after.sum()), n)
        lo, hi = r.interval
        diff = r.after.mean() - r.before.mean()
        table.add_row(
            f"test {r.name} (n={n})",
            f"{r.before.mean():.3f} [{b_lo:.3f}, {b_hi:.3f}]",
            f"{r.after.mean():.3f} [{a_lo:.3f}, {a_hi:.3f}]",
            f"{diff:+.3f} [{lo:+.3f}, {hi:+.3f}]",
        )
    out.print(table)
    out.print(f"search {result.seconds:.0f} s; saved {out_file}")


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="Prompt text.")],
    model: Annotated[str, typer.Option(help="Model name or folder.")] = "smollm2-135m",
    calibration: Annotated[
        Path | None, typer.Option(help="Calibration config JSON from `interp calibrate`.")
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1, max=512)] = 40,
) -> None:
    """Greedy generation (streamed), optionally with a saved sink calibration applied."""
    from interp.calibration import CalibrationConfig, apply_calibration
    from interp.generate import greedy_decode

    try:
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
        if config is not None:
            console.print(
                f"calibrating {len(config.heads)} heads ({calibration}); every step recomputes "
                "the whole sequence (ACT needs the full attention pattern)"
            )
        eos = m.tokenizer.eos_token_id
        new: list[int] = []
        out.print(prompt, end="")

        def show(token: int) -> None:  # stream the text as it grows (byte-level BPE safe)
            before = m.tokenizer.decode(new, skip_special_tokens=True)
            new.append(token)
            out.print(m.tokenizer.decode(new, skip_special_tokens=True)[len(before) :], end="")

        handle = apply_calibration(m, config) if config is not None else None
        try:
            greedy_decode(
                m, ids, max_new_tokens=max_new_tokens, stop=lambda t: t == eos, on_step=show,
                use_cache=config is None,
            )  # fmt: skip
        finally:
            if handle is not None:
                handle.remove()
        out.print()
    except InterpError as e:
        _fail(e)


@app.command()
def anchors(
    text: Annotated[str, typer.Argument(help="Text to analyse (quote it).")],
    model: Annotated[str, typer.Option(help="Model name or folder.")] = "smollm2-135m",
    top: Annotated[int, typer.Option(min=1, help="How many tokens of each kind to print.")] = 10,
) -> None:
    """Preplan (WAAD jumps) and anchor (high FAI) tokens of TEXT (Preplan-and-Anchor)."""
    from interp.heads.anchor import anchor_tokens

    try:
        df = anchor_tokens(_load(model), text)
    except InterpError as e:
        _fail(e)
    for kind, col in (("anchor", "fai"), ("preplan", "waad")):
        rows = df[df[kind]].sort_values(col, ascending=False).head(top)
        table = Table("position", "token", col, title=f"{kind} tokens ({int(df[kind].sum())})")
        for r in rows.itertuples():
            table.add_row(str(r.position), repr(r.token), f"{getattr(r, col):.4f}")
        out.print(table)


@app.command()
def dashboard(
    run: Annotated[
        Path | None,
        typer.Option("--run", help="A run folder written by `interp scan` (its head tables)."),
    ] = None,
    model: Annotated[str, typer.Option("--model", help="Model name or path.")] = "smollm2-135m",
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8050,
    root: Annotated[
        list[Path] | None,
        typer.Option(
            help="Folder whose models and run folders the page may load when --host is not "
            "loopback (repeat; default: the working folder)."
        ),
    ] = None,
) -> None:
    """Serve the attention explorer (head atlas, attention maps, geometry, ablation) in a browser.

    The model loads in the background (the page shows progress). Without --run the fast
    detectors are computed on load; with --run every table of that scan is shown.
    """
    from dashboards.serve import make_server

    if run is not None and not run.is_dir():
        _fail(InputError(f"run folder {run} does not exist; write one with `interp scan`"))
    try:
        checks.listen_address(host, port)
        server, state = make_server(
            model, str(run) if run else None, host=host, port=port, roots=root
        )
    except InterpError as e:
        _fail(e)
    except OSError as e:  # the port is in use, or the address is not this machine's
        _fail(InputError(f"cannot listen on {host}:{port}: {e.strerror or e}"))
    console.print(
        f"interp dashboard on [bold]http://{host}:{server.effective_port}[/] "
        f"(loading {model} in the background; Ctrl-C stops)"
    )
    try:
        server.run()
    except KeyboardInterrupt:
        server.close()


@app.command("train-toy")
def train_toy_cmd(
    attention: Annotated[str, typer.Option(help="dpa (softmax of q.k) or ea ((q.k)^2).")] = "ea",
    task: Annotated[
        str, typer.Option(help="recall, delay_sum, or a mixture such as recall,delay_sum.")
    ] = "recall",
    complexity: Annotated[int, typer.Option(help="The task's complexity knob.")] = 4,
    seed: Annotated[int, typer.Option(help="Initialisation and data seed.")] = 0,
    steps: Annotated[int, typer.Option(min=1)] = 1500,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    lr: Annotated[float, typer.Option()] = 3e-3,
    n_layers: Annotated[int, typer.Option(min=1)] = 2,
    n_heads: Annotated[int, typer.Option(min=1)] = 4,
    folder: Annotated[
        Path | None, typer.Option("--out", help="Model folder (default runs/toy/...).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Retrain even if OUT holds this run.")] = False,
) -> None:
    """Train a small transformer with dot-product or expressive attention on a toy task.

    Saves a Hugging Face folder (load it with `interp dashboard --model OUT` or
    interp.load_model) with metrics.json (held-out accuracy, chance, losses, time).
    """
    from dataclasses import asdict

    from circuits.toy import ToyConfig, load_metrics, train_toy

    try:
        cfg = ToyConfig(
            attention=attention, task=task, complexity=complexity, seed=seed, steps=steps,
            batch_size=batch_size, lr=lr, n_layers=n_layers, n_heads=n_heads,
        ).check()  # fmt: skip
        name = f"{task.replace(',', '+')}_c{complexity}_{attention}_s{seed}"
        folder = checks.out_folder(folder or Path("runs/toy") / name)
        done = load_metrics(folder)
        if done and done.get("config") == asdict(cfg) and not force:
            metrics = done
            console.print(f"{folder} already holds this run (--force retrains)")
        else:
            _, metrics = train_toy(cfg, folder)
    except InterpError as e:
        _fail(e)
    out.print(
        f"{attention} on {task} (complexity {complexity}, seed {seed}): held-out accuracy "
        f"{metrics['accuracy']:.3f} (chance {metrics['chance']:.3f}), loss "
        f"{metrics['first_loss']:.3f} -> {metrics['final_loss']:.3f}, "
        f"{metrics['train_seconds']:.0f} s; saved {folder}"
    )


@app.command()
def sweep(
    config: Annotated[Path, typer.Argument(help="Sweep file (YAML); see examples/sweep.yaml.")],
    engine: Annotated[str, typer.Option(help="local (in-process) or ray.")] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (HOST:6379); default: start one here.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Ray actors per model (default: the file's).")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default runs/sweeps/NAME).")
    ] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="torch threads of the in-process engine.")
    ] = None,
) -> None:
    """Run (or resume) a declarative sweep: models x prompt sets x context lengths.

    Writes a Parquet dataset partitioned by model and detector, a manifest, per-head summaries,
    dashboard run folders, plots and report.md. Finished shards are never recomputed.
    """
    from interp.sweep import load_config, run_sweep

    try:
        cfg = load_config(config)
        result = run_sweep(
            cfg, out_dir, engine=engine, address=address, workers=workers, threads=threads
        )
    except InterpError as e:
        _fail(e)
    out.print(
        f"sweep {cfg.name}: {result.n_shards} shards ({result.reused} reused, "
        f"{result.computed} computed, {len(result.failed)} failed) in {result.seconds:.1f} s, "
        f"{result.prompts_per_second:.2f} prompts/s; report {result.out / 'report.md'}"
    )
    for f in result.failed:
        console.print(
            f"[bold red]failed[/] {f['shard']} after {f['attempts']} attempts: {f['error']}"
        )
    if result.failed:
        raise typer.Exit(code=1)


@app.command("cache-dir")
def cache_dir() -> None:
    """Print the folder where converted models are cached (set INTERP_CACHE_DIR to move it)."""
    from interp.models.cache import cache_root

    out.print(str(cache_root()))


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
