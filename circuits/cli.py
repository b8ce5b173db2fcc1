"""The ``circuits`` command line (click).

Every user error reaches the terminal as one line on stderr and exit code 2; a run that
fails while training (NaN, full disk) exits 1 after writing what it finished; Ctrl-C exits
130 after the same. ``--debug`` shows tracebacks instead.
"""

from __future__ import annotations

import functools
import json
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

from circuits import plots, render
from circuits.claims import default_claims, verify as verify_claims
from circuits.compile import MODES, compile_circuit
from circuits.errors import CircuitsError, SimulationError
from circuits.graph import build_graph
from circuits.model import Model
from circuits.results import RunFolder, read_metrics, summarize
from circuits.rules import RuleRegistry, default_registry
from circuits.spec import CircuitSpec, load_spec
from circuits.training import EpochRecord, check_data_fit, fit, load_data

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
        except KeyboardInterrupt:
            _fail("interrupted", 130)
    return wrapper


def _load(path: str, overrides: Sequence[str], registry: RuleRegistry) -> CircuitSpec:
    spec = load_spec(path, list(overrides), rules=registry.signatures())
    return registry.get(spec.rule.name).augment(spec)


_set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                           help="Override a spec value, e.g. --set rule.lr=0.01 (repeatable).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), prog_name="circuits")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
def main(debug: bool) -> None:
    """Describe cortical circuits in TOML and compile them under backprop or any NGRAD-family rule."""


@main.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False))
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
                   f"{len(spec.projections)} projections, {program.parameter_count():,} parameters")
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
@click.argument("spec", type=click.Path(dir_okay=False))
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
            table.add_row(escape(o.claim), escape(o.describe_measured() or o.reason), escape(o.expected), verdict)
        Console(width=160).print(table)
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


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@_set_option
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Run folder (default: run.out, else runs/<circuit name>).")
@click.option("--backend", type=click.Choice(["numpy", "cupy"]), default=None,
              help="Array backend (default: run.backend).")
@click.option("--quiet", is_flag=True, help="No progress bars or table; only the run folder's path.")
@guarded
def simulate(spec: str, overrides: tuple[str, ...], out: str | None, backend: str | None,
             quiet: bool) -> None:
    """Train SPEC and write a run folder (spec.toml, schedule.txt, metrics.csv, summary.json,
    params.npz, curves.png)."""
    registry = default_registry()
    resolved = _load(spec, overrides, registry)
    model = Model(resolved, registry=registry, backend=backend)
    data = load_data(model)
    folder = RunFolder(out or resolved.run.out or Path("runs") / resolved.name)
    folder.write_start(model.spec, model.program)
    records: list[EpochRecord] = []
    status, message, code = "completed", "", 0
    started = time.perf_counter()
    try:
        with _Progress(quiet, model.spec.task.epochs, -(-data.n_train // model.spec.task.batch_size)) as bar:
            for record in fit(model, data, on_batch=bar.batch):
                folder.append_epoch(record)
                records.append(record)
                bar.epoch(record)
    except SimulationError as exc:
        status, message, code = "failed", str(exc), 1
    except KeyboardInterrupt:
        status, message, code = "interrupted", "stopped by the user (Ctrl-C)", 130
    wall = time.perf_counter() - started
    folder.write_params({k: model.backend.to_numpy(v) for k, v in model.params.items()})
    folder.write_summary(summarize(model.spec, records, status=status, message=message,
                                   wall_seconds=wall, backend=model.backend.name,
                                   unconverged=model.unconverged))
    if records:
        title = f"{model.spec.name} · {model.spec.rule.name}"
        plots.plot_curves(read_metrics(folder.path / "metrics.csv"), folder.path / "curves.png", title=title)
    if not quiet:
        _table(records, folder.path)
    click.echo(f"run folder: {folder.path}")
    for phase, count in model.unconverged.items():
        click.echo(f"warning: relaxation phase '{phase}' used its whole step budget without reaching "
                   f"its tolerance {count} times; give it more steps or a looser tolerance "
                   "(see summary.json)", err=True)
    if code:
        _fail(message, code)


class _Progress:
    """Rich progress bars for epochs and batches (nothing when quiet)."""

    def __init__(self, quiet: bool, epochs: int, batches: int) -> None:
        self.quiet, self.epochs, self.batches = quiet, epochs, batches
        self.bar: Any = None

    def __enter__(self) -> _Progress:
        if self.quiet:
            return self
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), transient=False)
        self.bar.__enter__()
        self.epoch_task = self.bar.add_task("epochs", total=self.epochs, info="")
        self.batch_task = self.bar.add_task("batches", total=self.batches, info="")
        self.started = time.perf_counter()
        return self

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


def _table(records: Sequence[EpochRecord], path: Path) -> None:
    table = Table(title=f"results ({path})")
    for column in ("epoch", "train loss", "test loss", "test acc", "seconds"):
        table.add_column(column, justify="right")
    shown = records if len(records) <= 12 else [*records[:5], *records[-5:]]
    for r in shown:
        table.add_row(str(r.epoch), f"{r.train_loss:.4f}", f"{r.test_loss:.4f}",
                      f"{100 * r.test_accuracy:.2f}%", f"{r.seconds:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
