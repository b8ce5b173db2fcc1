"""Learning-rate schedules: how every learning rate of a run changes from epoch to epoch.

A schedule is set by five keys of ``[rule]`` beside ``lr`` (declared once in
:data:`circuits.schema.SCHEDULE_PARAMS`, part of every rule's parameters):

``lr_schedule = "constant"``
    every epoch trains at the spec's rates (the default).
``lr_schedule = "step"``, ``lr_milestones = [8, 11]``, ``lr_gamma = 0.1``
    every rate is multiplied by ``lr_gamma`` after each epoch listed in ``lr_milestones``:
    epochs 1–8 at ``lr``, 9–11 at ``0.1·lr``, 12 on at ``0.01·lr`` (PyTorch's ``MultiStepLR``
    stepped once per epoch).
``lr_schedule = "cosine"``, ``lr_epochs = 12``, ``lr_floor = 0.0``
    epoch ``e`` trains at ``lr · (f + (1 − f)·(1 + cos(π (e − 1) / T)) / 2)`` with
    ``T = lr_epochs`` and ``f = lr_floor`` (PyTorch's ``CosineAnnealingLR`` with
    ``T_max = T``, ``eta_min = f·lr``, stepped once per epoch), and at ``f·lr`` after epoch
    ``T``. ``lr_epochs = 0`` means ``task.epochs``, resolved when the spec is read.

The factor multiplies *every* learning rate of the optimizer: ``rule.lr``, a projection's own
``lr``, and a rule's other optimizer rates (``inverse_lr``, ``topdown_lr``); weight decay
stays ``lr·weight_decay`` per step at the scheduled rate, as in PyTorch. Rates of a rule's own
side process that is not a gradient step (``mirror_lr`` of weight mirror) are left alone.

The rate changes between epochs only, so a run is a function of its spec and the epoch:
``circuits resume`` continues exactly as if the run had never stopped. Extending a finished
run (``circuits resume --epochs N``) keeps its saved spec, so a step schedule keeps its
milestones and a cosine schedule keeps the horizon it was planned with (``lr_epochs`` is
written into the saved spec): the extra epochs train at the final rate ``lr_floor·lr``. A
run *planned* for N epochs from the start gets a cosine over N epochs instead; to extend a
cosine run along a longer cosine, start a new run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from circuits.errors import SpecError
from circuits.schema import SCHEDULE_PARAMS, SCHEDULES

__all__ = ["SCHEDULES", "SCHEDULE_PARAMS", "SCHEDULE_DEFAULTS", "lr_factor", "resolve_schedule",
           "describe_schedule"]

SCHEDULE_DEFAULTS: dict[str, Any] = {param.name: param.default for param in SCHEDULE_PARAMS}
"""Each schedule key's default; the spec writer leaves keys at their default out."""

_KEYS_OF = {"constant": (), "step": ("lr_milestones", "lr_gamma"), "cosine": ("lr_epochs", "lr_floor")}


def resolve_schedule(params: Mapping[str, Any], epochs: int, source: str) -> dict[str, Any]:
    """Check the schedule keys of resolved rule ``params`` and fill ``lr_epochs``.

    Parameters
    ----------
    params
        The rule's parameters, each already checked on its own (types, ranges).
    epochs
        ``task.epochs``: a cosine schedule's horizon when ``lr_epochs`` is 0.
    source
        The spec's file name, for messages.

    Returns
    -------
    dict
        ``params`` with ``lr_epochs`` set for a cosine schedule (unchanged otherwise).

    Raises
    ------
    SpecError
        When a key of one schedule is set under another (it would be silently ignored), or a
        step schedule has no milestone.
    """
    kind = params.get("lr_schedule", "constant")
    for other, keys in _KEYS_OF.items():
        for key in keys:
            if other != kind and params.get(key, SCHEDULE_DEFAULTS[key]) != SCHEDULE_DEFAULTS[key]:
                raise SpecError(f"{source}: rule.{key}: is a key of lr_schedule = \"{other}\" but the "
                                f"schedule is \"{kind}\"; set rule.lr_schedule = \"{other}\" or remove "
                                f"rule.{key}")
    if kind == "step" and not params.get("lr_milestones"):
        raise SpecError(f"{source}: rule.lr_milestones: a step schedule needs at least one epoch "
                        "after which the rates fall, e.g. lr_milestones = [8, 11]")
    resolved = dict(params)
    if kind == "cosine" and resolved.get("lr_epochs", 0) == 0:
        resolved["lr_epochs"] = epochs
    return resolved


def lr_factor(params: Mapping[str, Any], epoch: int) -> float:
    """The factor every learning rate is multiplied by during ``epoch`` (counted from 1).

    Examples
    --------
    >>> lr_factor({"lr_schedule": "step", "lr_milestones": (2,), "lr_gamma": 0.5}, 3)
    0.5
    """
    kind = params.get("lr_schedule", "constant")
    if kind == "step":
        passed = sum(1 for milestone in params["lr_milestones"] if epoch > milestone)
        return float(params["lr_gamma"]) ** passed
    if kind == "cosine":
        horizon, floor = max(int(params["lr_epochs"]), 1), float(params["lr_floor"])
        if epoch > horizon:
            return floor
        return floor + (1.0 - floor) * (1.0 + math.cos(math.pi * (epoch - 1) / horizon)) / 2.0
    return 1.0


def describe_schedule(params: Mapping[str, Any], epochs: int) -> str | None:
    """One line for ``circuits compile``: the rule's ``lr`` in each epoch (``None`` when constant).

    Runs of equal rates are merged (``epochs 1–8: 0.05``); at most 20 epochs are listed.
    """
    kind = params.get("lr_schedule", "constant")
    if kind == "constant":
        return None
    lr = float(params["lr"])
    shown = max(1, min(epochs, 20))
    spans: list[tuple[int, int, float]] = []
    for epoch in range(1, shown + 1):
        rate = lr * lr_factor(params, epoch)
        if spans and spans[-1][2] == rate:
            spans[-1] = (spans[-1][0], epoch, rate)
        else:
            spans.append((epoch, epoch, rate))
    parts = [f"{a}: {rate:.4g}" if a == b else f"{a}–{b}: {rate:.4g}" for a, b, rate in spans]
    more = f"; … to epoch {epochs}" if epochs > shown else ""
    if kind == "step":
        how = (f"step, × {params['lr_gamma']:g} after epoch"
               f"{'s' if len(params['lr_milestones']) > 1 else ''} "
               + ", ".join(str(m) for m in params["lr_milestones"]))
    else:
        how = f"cosine over {params['lr_epochs']} epochs to {params['lr_floor']:g}·lr"
    return (f"learning-rate schedule: {how} (every rate × the factor of its epoch); rule.lr by epoch: "
            + ", ".join(parts) + more)
