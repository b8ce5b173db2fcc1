"""Shared fixtures and the hypothesis profiles (registered once, here).

Profiles: ``ci`` (derandomized, 40 examples, the default) and ``dev`` (100 random examples);
pick one with ``HYPOTHESIS_PROFILE=dev``. Hypothesis strategies live in ``tests/strategies.py``
(import them as ``from strategies import ...``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from circuits.rules import RuleRegistry, default_registry
from circuits.schema import RuleSignature

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

if "CIRCUITS_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["CIRCUITS_DATA"] = str(SHARED_DATA)

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=40, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _available_backends() -> list[str]:
    """``numpy`` always; ``cupy`` when it imports and sees at least one GPU."""
    names = ["numpy"]
    try:
        # A warning while probing (e.g. about the CUDA version) must not hide the GPU backend
        # when warnings are errors; the tests that then run on cupy still see every warning.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import cupy  # the optional GPU dependency

            if cupy.cuda.runtime.getDeviceCount() > 0:
                names.append("cupy")
    except Exception:  # no cupy, no driver, no device: all mean "not available"
        pass
    return names


BACKENDS = _available_backends()


@pytest.fixture(scope="session")
def registry() -> RuleRegistry:
    """The default rule registry (built-in rules and installed plug-ins)."""
    return default_registry()


@pytest.fixture(scope="session")
def rules(registry: RuleRegistry) -> dict[str, RuleSignature]:
    """Rule name → signature, what ``parse_spec``/``load_spec`` take as ``rules=``."""
    return registry.signatures()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The name of each available array backend in turn."""
    return request.param


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (holds ``circuits/``, ``specs/``, ``tests/``)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} not found")
    return SHARED_DATA
