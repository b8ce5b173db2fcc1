"""Throughput of sweeps: N small runs on c cores, against one run at a time and c shell loops.

Three ways to train the same N runs (one spec, seeds 0..N-1):

1. *single*: one process trains runs one after another with :func:`circuits.runs.execute_run`
   at one BLAS thread, after one untimed warm-up run; its rate (runs per second) is the
   single-run rate r₁;
2. *sweep*: ``circuits sweep`` machinery on a Dask ``LocalCluster`` of c one-thread workers,
   each warmed by one untimed run like the single process (``--cold``: not); the rate counts
   from submission to the last result (the cluster's start-up is printed apart). The target
   is a rate >= 0.8 · c · r₁;
3. *loops*: the naive alternative, c shell loops each running its share of the runs with
   ``circuits simulate`` at the BLAS library's default thread count (``--threads 0``,
   ``OPENBLAS_NUM_THREADS`` unset), every run a fresh process.

    python3 tools/bench_sweep.py --runs 16 --cores 2 --json gallery/bench_sweep.json

Measure on a quiet machine: other processes take cores from every arm, the sweep most.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from circuits.experiments import Experiment, comparison, plan_runs, run_sweep
from circuits.experiments.executors import DaskExecutor
from circuits.runs import execute_run
from circuits.spec import CircuitSpec

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = REPO / "specs" / "fa_digits.toml"
DEFAULT_SET = ("task.epochs=20", "run.align_every=0")


def _experiment(spec: Path, overrides: list[str], runs: int) -> Experiment:
    return comparison(spec, ["feedback_alignment"], runs, overrides)


def single(spec: Path, overrides: list[str], runs: int, folder: Path) -> tuple[float, float]:
    """(wall, CPU) seconds to train ``runs`` runs one after another in this process, one thread."""
    plans = plan_runs(_experiment(spec, overrides, runs + 1))
    execute_run(plans[-1].spec, folder / "warm-up", threads=1)  # imports and caches, untimed
    started, cpu = time.perf_counter(), time.process_time()
    for plan in plans[:-1]:
        outcome = execute_run(plan.spec, folder / plan.run_id, threads=1)
        assert outcome.status == "completed", outcome.message
    return time.perf_counter() - started, time.process_time() - cpu


def _worker_cpu() -> float:
    return time.process_time()


def _warm_up(spec: CircuitSpec, folder: str) -> None:
    """One untimed run in a worker: imports and caches, as ``single`` gets."""
    execute_run(spec, Path(folder) / f"warm-up-{os.getpid()}", threads=1)


def sweep(spec: Path, overrides: list[str], runs: int, cores: int, folder: Path,
          warm: bool) -> tuple[float, float, float]:
    """(cluster start-up seconds, seconds from submission to the last result, workers' CPU seconds).

    With ``warm``, every worker first trains one untimed run, as ``single`` does.
    The CPU seconds are the worker processes' own (all their threads) over the sweep: on a
    machine shared with other work they show what the runs cost apart from waiting for a core.
    """
    started = time.perf_counter()
    with DaskExecutor(workers=cores) as executor:
        up = time.perf_counter() - started
        if warm:
            warm_spec = plan_runs(_experiment(spec, overrides, runs + 1))[-1].spec
            executor.client.run(_warm_up, warm_spec, str(folder))
        before = executor.client.run(_worker_cpu)
        started = time.perf_counter()
        outcome = run_sweep(_experiment(spec, overrides, runs), folder, executor=executor)
        seconds = time.perf_counter() - started
        after = executor.client.run(_worker_cpu)
    assert outcome.count("completed") == runs, outcome.rows
    return up, seconds, sum(after[w] - before.get(w, 0.0) for w in after)


def loops(spec: Path, overrides: list[str], runs: int, cores: int, folder: Path) -> float:
    """Seconds for ``cores`` shell loops of ``circuits simulate`` at default BLAS threads."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    sets = " ".join(f"--set {shlex.quote(o)}" for o in overrides)
    scripts = []
    for core in range(cores):
        seeds = " ".join(str(s) for s in range(core, runs, cores))
        scripts.append(f"for s in {seeds}; do {shlex.quote(sys.executable)} -m circuits.cli simulate "
                       f"{shlex.quote(str(spec))} {sets} --set run.seed=$s --threads 0 --quiet "
                       f"--out {shlex.quote(str(folder))}/loop-$s >/dev/null || exit 1; done")
    started = time.perf_counter()
    procs = [subprocess.Popen(["bash", "-c", script], env=env) for script in scripts]
    codes = [p.wait() for p in procs]
    seconds = time.perf_counter() - started
    assert codes == [0] * cores, codes
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC)
    parser.add_argument("--set", dest="overrides", action="append", default=None,
                        help=f"overrides of the spec (default: {' '.join(DEFAULT_SET)})")
    parser.add_argument("--runs", type=int, default=16, help="N, the number of runs")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="c")
    parser.add_argument("--single-runs", type=int, default=4, help="runs timed one at a time")
    parser.add_argument("--cold", action="store_true",
                        help="time the sweep's workers from their first run (imports included)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()
    overrides = list(args.overrides or DEFAULT_SET)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t_single, cpu_single = single(args.spec, overrides, args.single_runs, root / "single")
        rate_single = args.single_runs / t_single
        up, t_sweep, cpu_sweep = sweep(args.spec, overrides, args.runs, args.cores, root / "sweep",
                                       warm=not args.cold)
        rate_sweep = args.runs / t_sweep
        t_loops = loops(args.spec, overrides, args.runs, args.cores, root / "loops")
        rate_loops = args.runs / t_loops
    target = 0.8 * args.cores * rate_single
    result = {
        "spec": str(args.spec.relative_to(REPO) if args.spec.is_relative_to(REPO) else args.spec),
        "set": overrides, "runs": args.runs, "cores": args.cores, "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "single": {"runs": args.single_runs, "seconds": round(t_single, 2), "runs_per_s": round(rate_single, 4),
                   "cpu_s_per_run": round(cpu_single / args.single_runs, 3)},
        "sweep": {"warm_workers": not args.cold, "cluster_start_s": round(up, 2), "seconds": round(t_sweep, 2), "runs_per_s": round(rate_sweep, 4),
                  "cpu_s_per_run": round(cpu_sweep / args.runs, 3),
                  "ratio_to_c_x_single": round(rate_sweep / (args.cores * rate_single), 3)},
        "loops": {"seconds": round(t_loops, 2), "runs_per_s": round(rate_loops, 4),
                  "ratio_to_c_x_single": round(rate_loops / (args.cores * rate_single), 3)},
        "target_runs_per_s": round(target, 4), "target_met": rate_sweep >= target,
    }
    print(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
