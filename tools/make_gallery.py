"""Render every spec in ``specs/`` to ``gallery/<stem>.svg`` and ``gallery/<stem>.dot``.

Usage::

    python tools/make_gallery.py            # (re)write the diagrams
    python tools/make_gallery.py --check    # exit 1 if any diagram is missing or stale

Stages of :func:`render_gallery`, for each ``specs/*.toml`` in name order:

1. load the spec against the default rule catalogue and let its rule add the projections it
   creates (``augment``), so the diagram shows what actually runs;
2. build the graph (cycles allowed only for energy-based rules) and compile it to learn the
   rule's phase names for the title (a spec that does not compile is drawn without them);
3. write the SVG and DOT files; rendering is deterministic, so ``--check`` compares bytes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:   # run as a script from a checkout without installing circuits
    sys.path.insert(0, str(ROOT))

from circuits.compile import compile_circuit  # noqa: E402
from circuits.errors import CircuitsError  # noqa: E402
from circuits.graph import build_graph  # noqa: E402
from circuits.render import render_graph  # noqa: E402
from circuits.rules import default_registry  # noqa: E402
from circuits.spec import load_spec  # noqa: E402

SPECS = ROOT / "specs"
GALLERY = ROOT / "gallery"
FORMATS = (".svg", ".dot")


def render_gallery(out_dir: Path, specs_dir: Path = SPECS) -> list[Path]:
    """Write the diagrams of every ``specs_dir/*.toml`` into ``out_dir``.

    Parameters
    ----------
    out_dir
        Folder to write ``<stem>.svg`` and ``<stem>.dot`` into (created if missing).
    specs_dir
        Folder of spec files.

    Returns
    -------
    list of Path
        The files written, in spec-name order.

    Raises
    ------
    CircuitsError
        When a spec cannot be loaded or its graph is invalid.
    """
    registry = default_registry()
    written = []
    for source in sorted(Path(specs_dir).glob("*.toml")):
        spec = load_spec(source, rules=registry.signatures())
        rule = registry.get(spec.rule.name)
        spec = rule.augment(spec)
        graph = build_graph(spec, require_dag=not rule.signature.energy_based)
        try:
            phases = [phase.name for phase in compile_circuit(graph, rule).phases]
        except CircuitsError:
            phases = []
        for suffix in FORMATS:
            written.append(render_graph(graph, Path(out_dir) / f"{source.stem}{suffix}", phases=phases))
    return written


def stale(gallery: Path = GALLERY, specs_dir: Path = SPECS) -> list[str]:
    """Gallery files that are missing or differ from a fresh rendering, as ``"<name> (why)"``."""
    with tempfile.TemporaryDirectory() as tmp:
        problems = []
        for fresh in render_gallery(Path(tmp), specs_dir):
            kept = gallery / fresh.name
            if not kept.exists():
                problems.append(f"{kept.name} (missing)")
            elif kept.read_bytes() != fresh.read_bytes():
                problems.append(f"{kept.name} (stale)")
        return problems


def main(argv: list[str] | None = None) -> int:
    """Command line entry; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only compare with gallery/; exit 1 listing missing or stale files")
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = stale()
            for line in problems:
                print(f"gallery/{line}")
            if problems:
                print("run: python tools/make_gallery.py", file=sys.stderr)
            return 1 if problems else 0
        for path in render_gallery(GALLERY):
            print(f"wrote {path.relative_to(ROOT)}")
    except CircuitsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
