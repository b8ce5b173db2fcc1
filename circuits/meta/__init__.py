"""The outer search over the plasticity family: ``circuits meta META.toml``.

A meta file (:mod:`circuits.meta.file`) names a base spec under the ``plasticity`` rule, the
terms searched, an optimizer (:mod:`circuits.meta.es`: ``es`` or ``cma``), the inner tasks
and an objective (:mod:`circuits.meta.objectives`). :func:`run_search` scores each
generation's candidates (:mod:`circuits.meta.evaluate`), in parallel on Dask workers when
asked, checkpoints each generation, and writes the outputs (:mod:`circuits.meta.outputs`).
"""

from __future__ import annotations

from circuits.meta.evaluate import Evaluator, theta_terms
from circuits.meta.file import MetaConfig, MetaError, load_meta, parse_meta
from circuits.meta.objectives import Objective, ObjectiveRegistry, default_objectives
from circuits.meta.search import CHECKPOINT, run_search, search

__all__ = ["CHECKPOINT", "Evaluator", "MetaConfig", "MetaError", "Objective", "ObjectiveRegistry",
           "default_objectives", "load_meta", "parse_meta", "run_search", "search", "theta_terms"]
