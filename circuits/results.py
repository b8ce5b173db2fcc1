"""Kept for old imports: the run folder now lives in :mod:`circuits.runs`."""

from __future__ import annotations

from circuits.runs import RunFolder, read_metrics, summarize

__all__ = ["RunFolder", "read_metrics", "summarize"]
