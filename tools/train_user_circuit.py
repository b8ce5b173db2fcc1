"""Train the 64-100-50-10 hard-sigmoid digits circuit of ``tests/test_energy.py`` (``USER``) with
only ``rule.name`` set, as a user would, and print its test accuracy per epoch.

    python tools/train_user_circuit.py equilibrium_propagation --epochs 3 --seeds 0 1 2

Extra ``--set KEY=VALUE`` overrides go on top (e.g. ``--set rule.beta=0.5``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import circuits  # noqa: E402
from test_energy import USER  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rule")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    finals = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "user.toml"
        path.write_text(USER.format(rule=args.rule))
        for seed in args.seeds:
            model = circuits.load(path, [f"run.seed={seed}", *args.overrides])
            records = list(circuits.fit(model, circuits.load_data(model), epochs=args.epochs))
            finals.append(records[-1].test_accuracy)
            converged = {k: v.converged for k, v in records[-1].relaxation.items()}
            print(f"seed {seed}: " + ", ".join(f"{100 * r.test_accuracy:.1f} %" for r in records)
                  + f"  converged {converged}")
    print(f"{args.rule}: {100 * np.mean(finals):.1f} ± {100 * np.std(finals, ddof=1) if len(finals) > 1 else 0:.1f} % "
          f"after {args.epochs} epochs over seeds {args.seeds}")


if __name__ == "__main__":
    main()
