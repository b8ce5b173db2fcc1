"""CPU time per training step of circuits against PyTorch, alternating in one process (one thread).

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 tools/bench_cpu_time.py
    python3 tools/bench_cpu_time.py --case lenet_bp --steps 50 --rounds 5

On a shared machine wall time measures the scheduler as much as the code: a run's seconds
moved by up to 65 % between repeats at load 10 (README, "Performance"). This script builds the
cases of ``tools/bench.py`` (same circuit, initial weights and batches), then times each side's
``train`` over the same batches with ``time.process_time`` (the CPU time of this process, which
is one thread: NumPy's BLAS and torch are limited to one), circuits then PyTorch, round after
round, and reports the median per step and each round's ratio. It needs the ``bench`` extra.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench  # noqa: E402  (tools/bench.py, a script beside this one)


def cpu_times(case: str, work: bench.Workload, rounds: int) -> dict[str, list[float]]:
    """Milliseconds of CPU time per step of each side, one entry per round."""
    ours, refs = bench.make_cases("step", ("pytorch",))[case].build(work)
    times: dict[str, list[float]] = {runner.label: [] for runner in (ours, *refs)}
    for _ in range(rounds):
        for runner in (ours, *refs):
            runner.reset()
            start = time.process_time()
            runner.train(runner.batches)
            times[runner.label].append((time.process_time() - start) / work.steps * 1e3)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", action="append", choices=["bp", "fa", "lenet_bp", "lenet_fa"],
                        help="case to run (repeatable; default: lenet_bp, lenet_fa)")
    parser.add_argument("--steps", type=int, default=50, help="training steps per round (default 50)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="init and batch-order seed")
    beside = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    parser.add_argument("--data-dir", default=os.environ.get("CIRCUITS_DATA", str(beside)),
                        help="folder holding mnist/ (default: $CIRCUITS_DATA, else ../shared/data beside "
                             "the repository)")
    args = parser.parse_args(argv)
    bench.limit_threads(1)
    work = bench.load_workload(args.data_dir, args.seed, args.steps)
    for case in args.case or ["lenet_bp", "lenet_fa"]:
        times = cpu_times(case, work, args.rounds)
        ours, ref = statistics.median(times["circuits"]), statistics.median(times["pytorch"])
        rounds = " ".join(f"{a / b:.2f}" for a, b in zip(times["circuits"], times["pytorch"]))
        print(f"{case}: circuits {ours:.2f} ms/step, pytorch {ref:.2f} ms/step (CPU time, medians of "
              f"{args.rounds}), ratio {ours / ref:.2f}; per round {rounds}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
