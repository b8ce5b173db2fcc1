"""Make the STDP and spiking temporal-derivative figures and numbers in gallery/spikes/.

    python tools/make_spike_figures.py [--out gallery/spikes] [--seed 0] [--quick]

1. ``stdp_window.png``: the pre × dV/dt protocol at full length (4,000 s, dt = 1 ms), mean weight
   change per 10 ms lag bin ± SE, and per 2 ms bin out to ±100 ms.
2. ``stdp_filter.png``: pair STDP on modulated Poisson trains (1,000 synapses, 100 s, τ = 20 ms)
   against the theory, over frequency (φ = 0) and phase (f = 1 Hz): the measured gain
   ``ΔW / (b·a·ω·D/2)`` against ``2Aτ²/(1 + ω²τ²)``.
3. ``td_spiking_cosine.png``: cosine of the temporal-derivative update read from spikes (count
   differences; pair STDP with τ = T/4) with the rate rule's update, against the window T, on
   specs/spiking_td_digits.toml at its initial weights (one batch of 32, 5 draws per T).
4. ``numbers.md``: every number plotted, and the issue's pass criteria at the full protocols.

``--quick`` shortens every protocol (for a smoke test); the gallery is made without it.
Run with one BLAS thread (``OPENBLAS_NUM_THREADS=1``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import attrs
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from circuits.backends import stream_seed
from circuits.claims.base import capped_data
from circuits.model import Model
from circuits.rules import default_registry
from circuits.spec import load_spec
from circuits.spikes import (FilterProtocol, WindowProtocol, filter_gain, filter_protocol, filter_theory,
                             window_protocol)
from circuits.spikes.temporal import measure

ROOT = Path(__file__).resolve().parent.parent


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=130, metadata={"Software": None})


def window_figure(out: Path, seed: int, quick: bool) -> list[str]:
    protocol = WindowProtocol(duration=400.0 if quick else 4000.0)
    rng = np.random.default_rng(stream_seed(seed, "figure:stdp_window"))
    coarse = window_protocol(protocol, rng)
    fine = window_protocol(attrs.evolve(protocol, bin_ms=2, max_lag_ms=100),
                           np.random.default_rng(stream_seed(seed, "figure:stdp_window_fine")))
    fig = Figure(figsize=(6.4, 3.8))
    ax = fig.add_subplot()
    ax.axhline(0, color="#999999", lw=0.8)
    ax.axvline(0, color="#999999", lw=0.8)
    ax.errorbar(fine.centers_ms, fine.mean, yerr=fine.se, fmt=".", color="#9aa7b0", ms=3, lw=0.6,
                label="2 ms bins (±SE)")
    ax.errorbar(coarse.centers_ms, coarse.mean, yerr=coarse.se, fmt="o-", color="#a23b72", ms=5, lw=1.4,
                capsize=3, label="10 ms bins (±SE)")
    ax.set_xlabel("Δt = t_post(nearest) − t_pre  (ms)")
    ax.set_ylabel("mean ΔW = dV/dt at the pre spike  (1/s)")
    ax.set_title(f"pre × dV/dt gives the STDP window ({protocol.duration:g} s, post {coarse.post_rate_hz:.1f} Hz)",
                 fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    _save(fig, out / "stdp_window.png")
    z = coarse.antisymmetry_z()
    lines = [f"## The window emerges ({protocol.duration:g} s at dt = 1 ms, seed {seed})", "",
             f"Postsynaptic rate {coarse.post_rate_hz:.2f} Hz. Mean ΔW (dV/dt, 1/s) ± SE per 10 ms lag bin:", "",
             "| lag bin (ms) | mean ΔW | SE | spikes |", "|---|---|---|---|"]
    for lo, hi, m, e, c in zip(coarse.edges_ms[:-1], coarse.edges_ms[1:], coarse.mean, coarse.se, coarse.count):
        lines.append(f"| {lo:+g} … {hi:+g} | {m:+.2f} | {e:.2f} | {c} |")
    lines += ["", f"Signs agree with Δt: {coarse.signs_agree()}; (ΔW(Δt) + ΔW(−Δt))/SE for the bins from 0 out: "
              + ", ".join(f"{v:+.2f}" for v in z) + f" (all within 3: {bool(np.all(np.abs(z) <= 3))}).", ""]
    return lines


def filter_figure(out: Path, seed: int, quick: bool) -> list[str]:
    synapses = 100 if quick else 1000
    rng = np.random.default_rng(stream_seed(seed, "figure:stdp_filter"))
    freqs = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
    rows = []
    for f in freqs:
        rows.append((f, 0.0, filter_protocol(FilterProtocol(synapses=synapses, frequency=f), rng)))
    for phase in (np.pi / 2, np.pi):
        rows.append((1.0, phase, filter_protocol(FilterProtocol(synapses=synapses, phase=phase), rng)))
    fig = Figure(figsize=(9.0, 3.6))
    ax, bx = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    grid = np.geomspace(0.3, 30, 200)
    ax.plot(grid, [filter_gain(FilterProtocol(frequency=f)) * 1e4 for f in grid], color="#37474f", lw=1.4,
            label="2Aτ²/(1 + ω²τ²)")
    for f, phase, r in rows:
        if phase == 0.0:
            p = FilterProtocol(frequency=f)
            scale = r.theory / filter_gain(p)
            ax.errorbar([f], [r.mean / scale * 1e4], yerr=[r.se / scale * 1e4], fmt="o", color="#a23b72", ms=5,
                        capsize=3)
    ax.set_xscale("log")
    ax.set_xlabel("modulation frequency f (Hz)")
    ax.set_ylabel("gain  (10⁻⁴ s²)")
    ax.set_title("pair STDP = pre × low-pass d(post)/dt", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    phases = np.linspace(0, 2 * np.pi, 200)
    bx.plot(phases / np.pi, [filter_theory(FilterProtocol(phase=ph)) for ph in phases], color="#37474f", lw=1.4,
            label="theory")
    for f, phase, r in rows:
        if f == 1.0:
            bx.errorbar([phase / np.pi], [r.mean], yerr=[r.se], fmt="o", color="#a23b72", ms=5, capsize=3)
    bx.axhline(0, color="#999999", lw=0.8)
    bx.set_xlabel("phase φ of the presynaptic rate (π)")
    bx.set_ylabel("mean ΔW at f = 1 Hz")
    bx.set_title(f"{synapses} synapses, 100 s, τ = 20 ms", fontsize=10)
    fig.tight_layout()
    _save(fig, out / "stdp_filter.png")
    lines = [f"## STDP is a derivative filter ({synapses} synapses, 100 s, τ = 20 ms, A = 1, seed {seed})", "",
             "| f (Hz) | φ | mean ΔW | SE | theory | (mean − theory)/SE | relative error |",
             "|---|---|---|---|---|---|---|"]
    for f, phase, r in rows:
        rel = f"{r.relative_error * 100:.2f} %" if abs(r.theory) > 1e-9 else "—"
        lines.append(f"| {f:g} | {phase / np.pi:g}π | {r.mean:+.2f} | {r.se:.2f} | {r.theory:+.2f} | "
                     f"{(r.mean - r.theory) / r.se:+.2f} | {rel} |")
    lines.append("")
    return lines


def td_figure(out: Path, seed: int, quick: bool) -> list[str]:
    registry = default_registry()
    spec = load_spec(ROOT / "specs" / "spiking_td_digits.toml", rules=registry.signatures())
    data = capped_data(Model(spec, registry=registry), 32, 1)
    windows = (1, 4, 16, 64, 256) if quick else (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
    draws = 2 if quick else 5
    result = measure(spec, data.x_train, data.y_train, windows, np.random.default_rng(stream_seed(seed, "figure:td")),
                     draws=draws)
    fig = Figure(figsize=(6.4, 3.8))
    ax = fig.add_subplot()
    styles = {"counts": "-", "stdp": "--"}
    colors = {"x->h1": "#a23b72", "h1->h2": "#2a7f8f"}
    for key, values in result.items():
        if key == "T":
            continue
        kind, proj = key.split(":")
        label = f"{proj}: {'spike-count difference' if kind == 'counts' else 'pair STDP, τ = T/4'}"
        ax.plot(result["T"], values, styles[kind], marker="o", ms=3.5, color=colors.get(proj, "#37474f"),
                label=label)
    ax.set_xscale("log", base=2)
    ax.set_ylim(0, 1.02)
    ax.axhline(1.0, color="#999999", lw=0.8)
    ax.set_xlabel("time bins T before (and after) the nudge")
    ax.set_ylabel("cosine with the rate rule's update")
    ax.set_title("temporal-derivative rule read from spikes (spiking_td_digits)", fontsize=10)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    fig.tight_layout()
    _save(fig, out / "td_spiking_cosine.png")
    keys = [k for k in result if k != "T"]
    lines = [f"## Temporal-derivative rule read from spikes (specs/spiking_td_digits.toml, initial weights, one "
             f"batch of 32 digits, mean of {draws} draws, seed {seed})", "",
             "| T | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for i, t in enumerate(result["T"]):
        lines.append(f"| {int(t)} | " + " | ".join(f"{result[k][i]:.3f}" for k in keys) + " |")
    lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "gallery" / "spikes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="shortened protocols (smoke test)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    lines = ["# Spikes and STDP: measured numbers", "",
             "Made by `OPENBLAS_NUM_THREADS=1 python tools/make_spike_figures.py"
             + (" --quick" if args.quick else "") + f" --seed {args.seed}`.", ""]
    for make in (window_figure, filter_figure, td_figure):
        start = time.perf_counter()
        lines += make(args.out, args.seed, args.quick)
        print(f"{make.__name__}: {time.perf_counter() - start:.1f} s", flush=True)
    (args.out / "numbers.md").write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
