"""Time one training epoch at several BLAS thread counts, on a quiet and on a loaded machine.

Usage::

    CIRCUITS_DATA=../shared/data python tools/bench_threads.py              # mnist_800_bp, 1 vs all
    python tools/bench_threads.py --threads 1 2 0 --load 0 1 2 --repeat 3
    python tools/bench_threads.py --spec specs/bp_digits.toml --set task.n_train=1000

Each measurement is a fresh Python process (so BLAS starts its thread pool afresh) that
trains one epoch through :func:`circuits.runs.execute_run` with ``threads=N`` (0: the BLAS
library's default, one thread per core) and reports the epoch's training seconds
(``metrics.csv``'s ``seconds``: the batches, not data loading or evaluation). "Loaded" means
that many busy-looping processes run beside it, as other jobs on a shared machine would.

The child processes run with ``OPENBLAS_CORETYPE``, ``OPENBLAS_L2_SIZE``,
``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` removed from their
environment, as on a user's machine; the BLAS kernel they load is printed from threadpoolctl.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_CHILD = """
import json, sys
from threadpoolctl import threadpool_info
from circuits import load_spec
from circuits.runs import execute_run, read_metrics
spec = load_spec(sys.argv[1], ["task.epochs=1", *json.loads(sys.argv[4])])
blas = []
def look(*args):  # inside the run's thread limit
    blas.extend({k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
                for i in threadpool_info() if i["user_api"] == "blas")
outcome = execute_run(spec, sys.argv[2], threads=int(sys.argv[3]), on_start=look)
seconds = read_metrics(outcome.path / "metrics.csv")[0]["seconds"]
print(json.dumps({"seconds": seconds, "status": outcome.status, "blas": blas}))
"""

_SPIN = "while True:\n    pass\n"

_CLEARED = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
            "MKL_NUM_THREADS")


def measure(spec: Path, threads: int, overrides: list[str]) -> dict:
    """One epoch in a fresh process; its training seconds and the BLAS it used."""
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, "-c", _CHILD, str(spec), str(Path(tmp) / "run"), str(threads),
                               json.dumps(overrides)], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench_threads: the run failed:\n{done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "specs" / "mnist_800_bp.toml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 0],
                        help="thread counts to time (0: the BLAS default, one per core)")
    parser.add_argument("--load", type=int, nargs="+", default=[0, 1],
                        help="numbers of busy processes running beside the measurement")
    parser.add_argument("--repeat", type=int, default=2, help="epochs timed per setting (median shown)")
    args = parser.parse_args()
    print(f"spec {args.spec}, {os.cpu_count()} CPUs, load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    blas_shown = False
    for load in args.load:
        spinners = [subprocess.Popen([sys.executable, "-c", _SPIN]) for _ in range(load)]
        try:
            for threads in args.threads:
                runs = [measure(args.spec, threads, args.overrides) for _ in range(args.repeat)]
                if not blas_shown:
                    print(f"BLAS: {runs[0]['blas']}")
                    blas_shown = True
                times = [r["seconds"] for r in runs]
                used = runs[0]["blas"][0]["num_threads"] if runs[0]["blas"] else "?"
                print(f"busy processes {load}  threads {threads} ({used} used)  epoch seconds: "
                      f"median {statistics.median(times):.2f}  all {', '.join(f'{t:.2f}' for t in times)}",
                      flush=True)
        finally:
            for spinner in spinners:
                spinner.kill()
                spinner.wait()


if __name__ == "__main__":
    main()
