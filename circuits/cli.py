"""The ``circuits`` command line (click).

Every user error reaches the terminal as one line on stderr and exit code 2; a run that
fails while training (NaN, full disk) exits 1 after writing what it finished; Ctrl-C exits
130 after the same. ``--debug`` shows tracebacks instead.
"""

from __future__ import annotations

import functools
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from circuits import experiments, memory, render
from circuits.claims import default_claims, verify as verify_claims
from circuits.compile import MODES, RuleLike, compile_circuit, describe_unused, unused_projections
from circuits.errors import CircuitsError, SimulationError
from circuits.export import FORMATS as EXPORT_FORMATS, NORMALIZATIONS as EXPORT_NORMALIZATIONS, export_run
from circuits.graph import CircuitGraph, build_graph
from circuits.ir import Program
from circuits.lr_schedule import describe_schedule
from circuits.runs import (SIGTERM_MESSAGE, RunFolderError, Terminated, default_run_dir, execute_run, expand_out,
                           read_summary, resolve_run_spec, run_dirs, run_id, sigterm_interrupts)
from circuits.rules import Rule, RuleRegistry, default_registry
from circuits.spec import CircuitSpec, load_spec
from circuits.training import EpochRecord, check_data_fit

__all__ = ["main"]


def _version() -> str:
    try:
        return version("circuits")
    except PackageNotFoundError:
        return "unknown"


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn user errors into one line on stderr and a non-zero exit (unless ``--debug``)."""
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if click.get_current_context().find_root().params.get("debug"):
            return command(*args, **kwargs)
        try:
            return command(*args, **kwargs)
        except SimulationError as exc:
            _fail(str(exc), 1)
        except CircuitsError as exc:
            _fail(str(exc), 2)
        except OSError as exc:
            _fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "), 2)
        except Terminated:
            _fail("stopped by SIGTERM", 143)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
    return wrapper


def _load(path: str, overrides: Sequence[str], registry: RuleRegistry) -> CircuitSpec:
    spec = load_spec(path, list(overrides), rules=registry.signatures())
    return registry.get(spec.rule.name).augment(spec)


def _warn_unused(source: str, graph: CircuitGraph, rule: RuleLike, program: Program | None = None) -> None:
    """One warning line on stderr naming the projections the rule never reads (judged on its
    train program: an infer program reads no feedback by design)."""
    train = program if program is not None and program.mode == "train" else compile_circuit(graph, rule)
    line = describe_unused(source, rule.signature.name, unused_projections(graph, train))
    if line:
        click.echo(f"warning: {line}", err=True)


_set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                           help="Override a spec value, e.g. --set rule.lr=0.01 (repeatable).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), prog_name="circuits")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
def main(debug: bool) -> None:
    """Describe cortical circuits in TOML and compile them under backprop or any NGRAD-family rule."""


@main.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path())
@_set_option
@guarded
def check(specs: tuple[str, ...], overrides: tuple[str, ...]) -> None:
    """Validate SPECS: one line per spec, non-zero exit if any is wrong."""
    registry = default_registry()
    failed = 0
    for path in specs:
        try:
            spec = _load(path, overrides, registry)
            rule = registry.get(spec.rule.name)
            graph = build_graph(spec, require_dag=not rule.signature.energy_based)
            program = compile_circuit(graph, rule)
            check_data_fit(spec, graph)
        except CircuitsError as exc:
            failed += 1
            click.echo(f"error: {exc}", err=True)
            continue
        click.echo(f"ok: {path}: {spec.rule.name}, {len(spec.populations)} populations, "
                   f"{len(spec.projections)} projections, {program.parameter_count():,} parameters, "
                   f"{_memory_note(spec, rule)}")
        _warn_unused(path, graph, rule, program)
    if failed:
        sys.exit(2)


@main.command(name="render")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Diagram file: .svg, .png, .pdf, .dot or .mmd.")
@_set_option
@guarded
def render_command(spec: str, output: str, overrides: tuple[str, ...]) -> None:
    """Draw the circuit of SPEC (forward solid, feedback dashed, lateral loops)."""
    registry = default_registry()
    resolved = _load(spec, overrides, registry)
    rule = registry.get(resolved.rule.name)
    graph = build_graph(resolved, require_dag=not rule.signature.energy_based)
    phases = [phase.name for phase in compile_circuit(graph, rule).phases]
    path = render.render_graph(graph, output, phases=phases)
    click.echo(f"wrote {path}")


@main.command(name="compile")
@click.argument("spec", type=click.Path())
@click.option("--mode", type=click.Choice(MODES), default="train", show_default=True,
              help="train applies updates; probe writes gradient estimates; infer runs forward only.")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="Show shapes for this batch size (default: task.batch_size).")
@_set_option
@guarded
def compile_command(spec: str, mode: str, batch: int | None, overrides: tuple[str, ...]) -> None:
    """Print the compiled schedule of SPEC: phases, ops in run order, buffers, sizes."""
    registry = default_registry()
    resolved = _load(spec, overrides, registry)
    rule = registry.get(resolved.rule.name)
    graph = build_graph(resolved, require_dag=not rule.signature.energy_based)
    program = compile_circuit(graph, rule, mode=mode)
    click.echo(program.describe(batch=batch or resolved.task.batch_size))
    schedule = describe_schedule(resolved.rule.params, resolved.task.epochs)
    if schedule is not None and mode == "train":
        click.echo(schedule)
    click.echo(f"run memory: {_memory_note(resolved, rule, detail=True)}")
    _warn_unused(spec, graph, rule, program)


def _memory_note(spec: CircuitSpec, rule: Rule, *, detail: bool = False) -> str:
    """The run's memory estimate; a warning line on stderr when it cannot fit this machine."""
    estimate = memory.estimate_run(spec, rule)
    try:
        memory.require_fit(estimate, where=spec.source)
    except memory.MemoryLimitError as exc:
        click.echo(f"warning: {exc}; simulate will refuse it", err=True)
    return estimate.describe() if detail else f"≈ {memory.format_bytes(estimate.total)} memory"


@main.command()
def rules() -> None:
    """List the registered rules, their parameters with defaults, and the pathways they need."""
    for name, sig in default_registry().signatures().items():
        click.echo(f"{name}: {sig.doc}")
        click.echo(f"  needs: {sig.needs}")
        for param in sig.params:
            click.echo(f"  {param.name} = {param.default!r}  ({param.doc}; {param.allowed()})")
        click.echo("")


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@_set_option
@click.option("--json", "as_json", is_flag=True, help="Print the outcomes as JSON instead of a table.")
@guarded
def verify(spec: str, overrides: tuple[str, ...], as_json: bool) -> None:
    """Measure every claim about SPEC's rule on SPEC's circuit; exit 1 if one fails."""
    registry = default_registry()
    resolved = _load(spec, overrides, registry)
    build_graph(resolved, require_dag=not registry.get(resolved.rule.name).signature.energy_based)
    outcomes = verify_claims(resolved, registry)
    if as_json:
        click.echo(json.dumps([{"claim": o.claim, "status": o.status, "measured": o.measured,
                                "expected": o.expected, "reason": o.reason} for o in outcomes], indent=2))
    else:
        table = Table(title=escape(f"claims of {resolved.rule.name} on {resolved.name}"))
        for column in ("claim", "measured", "expected", "verdict"):
            table.add_column(column, overflow="fold")
        for o in outcomes:
            verdict = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]", "skip": "[yellow]skip[/]"}[o.status]
            table.add_row(escape(o.claim), escape(o.describe_measured("\n") or o.reason), escape(o.expected), verdict)
        Console().print(table)  # the terminal's width (COLUMNS, else 80 when not a terminal); cells fold
    failed = [o.claim for o in outcomes if o.status == "fail"]
    if failed:
        _fail(f"{len(failed)} claim(s) failed on {spec}: {', '.join(failed)}", 1)


@main.command()
def claims() -> None:
    """List the catalogue of claims: name, rules, statement and source."""
    for claim in default_claims().all():
        click.echo(f"{claim.name}  [{', '.join(claim.rules)}]")
        click.echo(f"  {claim.statement}")
        click.echo(f"  source: {claim.source}\n")


_RUN_CODES = {"completed": 0, "failed": 1, "interrupted": 130}


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@_set_option
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Run folder (default: run.out, else runs/<circuit>/<rule>-seed<k>, numbered when taken).")
@click.option("--backend", type=click.Choice(["numpy", "cupy"]), default=None,
              help="Array backend (default: run.backend).")
@click.option("--threads", type=click.IntRange(min=0), default=None,
              help="BLAS threads (default: run.threads; 0: the BLAS library's default).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Empty the run folder --out first.")
@click.option("--quiet", is_flag=True, help="No progress bars or table; only the run folder's path.")
@guarded
def simulate(spec: str, overrides: tuple[str, ...], out: str | None, backend: str | None,
             threads: int | None, resume: bool, overwrite: bool, quiet: bool) -> None:
    """Train SPEC and write a run folder (spec.toml, schedule.txt, metrics.csv, summary.json,
    params.npz, checkpoint.npz, curves.png)."""
    registry = default_registry()
    resolved = resolve_run_spec(_load(spec, overrides, registry), threads=threads, backend=backend,
                                registry=registry)
    rule = registry.get(resolved.rule.name)
    _warn_unused(spec, build_graph(resolved, require_dag=not rule.signature.energy_based), rule)
    memory.check_run_memory(resolved, rule)  # before anything is allocated
    if out is not None:
        folder = expand_out(out)
    elif resolved.run.out is not None:
        folder = expand_out(resolved.run.out)
    else:
        folder = _default_folder(resolved, resume)
    _run(resolved, folder, resume=resume, overwrite=overwrite, quiet=quiet, registry=registry)


@main.command()
@click.argument("folder", type=click.Path(file_okay=False, exists=True))
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Train up to this many epochs in all (more than the saved task.epochs extends the run).")
@click.option("--quiet", is_flag=True, help="No progress bars or table; only the run folder's path.")
@guarded
def resume(folder: str, epochs: int | None, quiet: bool) -> None:
    """Continue the run in FOLDER (reads FOLDER/spec.toml) from its last checkpoint."""
    registry = default_registry()
    path = expand_out(folder)
    if not (path / "spec.toml").is_file():
        raise RunFolderError(f"{path} holds no spec.toml, so it is not a run folder to resume")
    overrides = [] if epochs is None else [f"task.epochs={epochs}"]
    _run(_load(str(path / "spec.toml"), overrides, registry), path, resume=True, overwrite=False,
         quiet=quiet, registry=registry)


@main.command(name="export")
@click.argument("source", type=click.Path(exists=True))
@click.option("--params", type=click.Path(dir_okay=False), default=None,
              help="A run's params.npz (default: SOURCE/params.npz for a run folder; a spec alone "
                   "exports its initial weights).")
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), default="nir", show_default=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The file to write.")
@click.option("--normalize", type=click.Choice(EXPORT_NORMALIZATIONS), default="none", show_default=True,
              help="rate: scale weights so integrate-and-fire rates follow the trained activities "
                   "(measured on the spec's training data).")
@click.option("--percentile", type=click.FloatRange(0, 100, min_open=True), default=99.9, show_default=True,
              help="The activity percentile that sets each population's rate scale.")
@_set_option
@guarded
def export_command(source: str, params: str | None, fmt: str, output: str, normalize: str,
                   percentile: float, overrides: tuple[str, ...]) -> None:
    """Write the trained circuit of SOURCE (a run folder or a spec file) as a NIR graph."""
    path = export_run(source, output, params=params, fmt=fmt, normalize=normalize,
                      percentile=percentile, overrides=overrides)
    click.echo(f"wrote {path}")


def _default_folder(spec: CircuitSpec, resume: bool) -> Path:
    """The default folder; when resuming, the first numbered one holding this very run."""
    if resume:
        wanted = run_id(spec)
        for candidate in run_dirs(spec):
            if not candidate.exists():
                break
            summary = read_summary(candidate)
            if summary is not None and summary.get("run_id") == wanted:
                return candidate
    return default_run_dir(spec)


def _run(spec: CircuitSpec, folder: Path, *, resume: bool, overwrite: bool, quiet: bool,
         registry: RuleRegistry) -> None:
    """Run ``spec`` into ``folder`` with progress bars; SIGTERM ends it like Ctrl-C (exit 143)."""
    with _Progress(quiet) as bar, sigterm_interrupts():
        outcome = execute_run(spec, folder, resume=resume, overwrite=overwrite, registry=registry,
                              on_batch=bar.batch, on_epoch=bar.epoch, on_start=bar.start)
    if not quiet:
        _table(list(outcome.records), outcome.path)
    click.echo(f"run folder: {outcome.path}")
    for phase, count in outcome.summary.get("relaxations", {}).items():
        if count["stopped_at_budget"]:
            click.echo(f"warning: relaxation phase '{phase}': {count['stopped_at_budget']} of {count['runs']} relaxations "
                       f"stopped at their budget above tolerance; raise {count['budget']} or loosen rule.tol "
                       "(see summary.json)", err=True)
    if outcome.status != "completed":
        code = 143 if outcome.message == SIGTERM_MESSAGE else _RUN_CODES[outcome.status]
        _fail(outcome.message, code)


class _Progress:
    """Rich progress bars for epochs and batches (nothing when quiet), shown from :meth:`start`."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Any = None
        self.batches = 0

    def __enter__(self) -> _Progress:
        return self

    def start(self, first: int, epochs: int, batches: int) -> None:
        if self.quiet:
            return
        self.batches = batches
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), transient=False)
        self.bar.__enter__()
        self.epoch_task = self.bar.add_task("epochs", total=epochs, completed=first - 1, info="")
        self.batch_task = self.bar.add_task("batches", total=batches, info="")
        self.started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def batch(self, epoch: int, index: int, loss: float) -> None:
        if self.bar is None or (index % 10 and index + 1 != self.batches):
            return
        if index < 10:
            self.started = time.perf_counter()
        self.bar.update(self.batch_task, completed=index + 1, info=f"loss {loss:.4f}")

    def epoch(self, record: EpochRecord) -> None:
        if self.bar is None:
            return
        rate = record.examples / record.seconds if record.seconds else 0.0
        self.bar.update(self.epoch_task, completed=record.epoch,
                        info=f"test loss {record.test_loss:.4f} · acc {100 * record.test_accuracy:.2f}% · "
                             f"{rate:,.0f} ex/s")


_SHOWN_EPOCHS = 12
"""Runs up to this many epochs are listed in full; longer ones show the first and last five."""


def _duration(seconds: float) -> str:
    """``0.0123`` → ``12.3 ms``, ``3.456`` → ``3.46 s``: a digits epoch does not read as zero."""
    return f"{1000 * seconds:.1f} ms" if seconds < 1.0 else f"{seconds:.2f} s"


def results_table(records: Sequence[EpochRecord], path: Path) -> Table:
    """The end-of-run table: one row per epoch, a "…" row where epochs are left out, and no
    accuracy column when no epoch has one (regression, autoencoding)."""
    accuracy = any(not math.isnan(r.test_accuracy) for r in records)
    table = Table(title=escape(f"results ({path})"))
    columns = ("epoch", "train loss", "test loss", *(("test acc",) if accuracy else ()), "time")
    for column in columns:
        table.add_column(column, justify="right")
    elide = len(records) > _SHOWN_EPOCHS
    for r in [*records[:5], None, *records[-5:]] if elide else records:
        if r is None:
            table.add_row(*["…"] * len(columns))
            continue
        acc = () if not accuracy else ("—" if math.isnan(r.test_accuracy) else f"{100 * r.test_accuracy:.2f}%",)
        table.add_row(str(r.epoch), f"{r.train_loss:.4f}", f"{r.test_loss:.4f}", *acc, _duration(r.seconds))
    return table


def _table(records: Sequence[EpochRecord], path: Path) -> None:
    Console().print(results_table(records, path))


# -- experiments (issue 11): sweep, report, compare ------------------------------------------

_cluster_options = [
    click.option("--out", type=click.Path(file_okay=False), default=None,
                 help="Sweep folder (default: sweeps/<experiment name>)."),
    click.option("--workers", type=click.IntRange(min=1), default=None,
                 help="Worker processes of the local Dask cluster (default: one per core)."),
    click.option("--scheduler", default=None, metavar="ADDRESS",
                 help="Run on an existing Dask cluster, e.g. tcp://host:8786 (the sweep folder "
                      "must be on a file system the workers share)."),
    click.option("--quiet", is_flag=True, help="No progress display; only the summary lines."),
]


def _cluster(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_cluster_options):
        command = option(command)
    return command


def _swept(outcome: experiments.SweepOutcome) -> None:
    click.echo(f"sweep folder: {outcome.out}: {len(outcome.rows)} runs, {outcome.ran} run now, "
               f"{outcome.skipped} already finished; {outcome.count('completed')} completed, "
               f"{outcome.count('failed')} failed")
    if outcome.count("failed"):
        click.echo(f"warning: {outcome.count('failed')} run(s) failed; their errors are in "
                   f"{outcome.out / 'results.csv'} (column message)", err=True)


@main.command()
@click.argument("experiment", type=click.Path(dir_okay=False))
@_cluster
@_set_option
@click.option("--dry-run", is_flag=True, help="Check the experiment and list its runs; run nothing.")
@guarded
def sweep(experiment: str, out: str | None, workers: int | None, scheduler: str | None, quiet: bool,
          overrides: tuple[str, ...], dry_run: bool) -> None:
    """Run every run of EXPERIMENT (variants x grid x seeds) on Dask; write results.csv and
    curves.csv. Finished runs are skipped, interrupted ones resumed. --set adds to the
    experiment's own set (e.g. --set task.epochs=10 for a short version)."""
    design = experiments.with_overrides(experiments.load_experiment(experiment), overrides)
    progress = None if quiet or dry_run else experiments.RichSweepProgress()
    outcome = experiments.run_sweep(design, out, workers=workers, scheduler=scheduler,
                                    progress=progress, dry_run=dry_run)
    if dry_run:
        for line in experiments.describe_plan(outcome):
            click.echo(line)
        return
    _swept(outcome)


@main.command()
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--no-figures", is_flag=True, help="Skip curves.png and alignment.png.")
@guarded
def report(folder: str, no_figures: bool) -> None:
    """Mean and 95 % confidence interval over seeds per variant, at the grid point chosen on
    validation; writes report.md, report.csv, curves.png (and alignment.png)."""
    made = experiments.make_report(folder, figures=not no_figures)
    Console(width=160).print(experiments.report_table(made))
    click.echo("wrote " + ", ".join(str(path) for path in made.files))


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--rules", required=True, metavar="A,B,...", help="Rules to compare, comma-separated.")
@click.option("--seeds", type=click.IntRange(min=1), default=5, show_default=True,
              help="Seeds 0..N-1 for every rule.")
@_set_option
@_cluster
@guarded
def compare(spec: str, rules: str, seeds: int, overrides: tuple[str, ...], out: str | None,
            workers: int | None, scheduler: str | None, quiet: bool) -> None:
    """Train SPEC under each rule with N seeds (a sweep), then report as `circuits report` does."""
    experiment = experiments.comparison(spec, rules.split(","), seeds, overrides)
    outcome = experiments.run_sweep(experiment, out, workers=workers, scheduler=scheduler,
                                    progress=None if quiet else experiments.RichSweepProgress())
    _swept(outcome)
    made = experiments.make_report(outcome.out)
    Console(width=160).print(experiments.report_table(made))
    click.echo("wrote " + ", ".join(str(path) for path in made.files))


if __name__ == "__main__":
    main()


# -- meta-learned plasticity (issue 12) -----------------------------------------------------------

@main.command()
@click.argument("meta_file", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Search folder (default: meta/<name> beside the current directory).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes of the local Dask cluster (default: one per core; 1: no Dask).")
@click.option("--scheduler", default=None, metavar="ADDRESS", help="Evaluate on an existing Dask cluster.")
@click.option("--resume", is_flag=True, help="Continue the search checkpointed in --out.")
@click.option("--quiet", is_flag=True, help="No progress bar; only the summary lines.")
@guarded
def meta(meta_file: str, out: str | None, workers: int | None, scheduler: str | None, resume: bool,
         quiet: bool) -> None:
    """Search the plasticity rule family (terms of META_FILE) for the rule that makes the base
    circuit learn; write meta.csv, best_rule.toml, rule.txt, heldout.csv and plots."""
    from circuits import meta as meta_search  # noqa: PLC0415 - keeps `circuits --help` fast

    config = meta_search.load_meta(meta_file)
    folder = Path(out) if out else Path("meta") / config.name
    bar = None if quiet else Progress(TextColumn("generations"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                                      console=Console(stderr=True))

    def on_generation(row: dict[str, float], total: int) -> None:
        if bar is None:
            return
        if not bar.tasks:
            bar.add_task("search", total=total, completed=row["generation"] - 1, info="")
        bar.update(bar.tasks[0].id, completed=row["generation"],
                   info=f"best {row['best_objective']:.4g} · mean {row['mean_objective']:.4g} · "
                        f"{row['evaluations'] / max(row['seconds'], 1e-9):.1f} evals/s")

    if bar is not None:
        bar.start()
    try:
        summary = meta_search.search(config, folder, workers=workers, scheduler=scheduler, resume=resume,
                                     on_generation=on_generation)
    finally:
        if bar is not None:
            bar.stop()
    click.echo(f"search folder: {folder}: {summary['generations']} generations, "
               f"{summary['evaluations']} evaluations, {summary['seconds']:.1f} s")
    click.echo(f"found: {summary['formula']}  ({config.objective} {summary['inner_objective']:.4g} on the inner tasks)")
    if summary["pruning"] is not None:
        pruning = summary["pruning"]
        click.echo(f"pruned: {len(pruning['removed'])} of {len(summary['terms'])} terms zeroed "
                   f"({', '.join(pruning['removed']) or 'none'}); fitness {pruning['search_fitness']:.4g} → "
                   f"{pruning['fitness']:.4g} (tolerance {pruning['tolerance']:g})")
    for row in summary["heldout"]:
        scores = ", ".join(f"{name} {row[f'{name}.mean']:.4g} ± {row[f'{name}.ci95']:.2g}"
                           for name in config.heldout_objectives)
        where = "" if row["task"] == "all" else f" [{row['task']}]"
        click.echo(f"held out  {row['arm']:<10} {scores}{where}")
