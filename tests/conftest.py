"""Shared fixtures, markers and the hypothesis profiles (registered once, here).

Profiles: ``ci`` (derandomized, 40 examples, the default) and ``dev`` (100 random examples);
pick one with ``HYPOTHESIS_PROFILE=dev``. Hypothesis strategies live in ``tests/strategies.py``
(import them as ``from strategies import ...``).

Data: no test may reach the network. ``$CIRCUITS_OFFLINE`` is set for this process and every
subprocess it starts, and ``urllib.request.urlopen`` refuses anything but ``file:`` URLs.
``$CIRCUITS_DATA`` defaults to ``../shared/data`` beside the repository when that exists; a test
marked ``@pytest.mark.needs_data("mnist")`` skips, naming the folders looked in, when the
data set's files are not there.
"""

from __future__ import annotations

import os
import urllib.request
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from circuits.idx import OFFLINE_VARIABLE, locate_split
from circuits.rules import RuleRegistry, default_registry
from circuits.schema import RuleSignature

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

if "CIRCUITS_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["CIRCUITS_DATA"] = str(SHARED_DATA)
os.environ[OFFLINE_VARIABLE] = "1"
_URLOPEN = urllib.request.urlopen


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs_data(name): needs the IDX files of data set `name` ($CIRCUITS_DATA "
                   "or ../shared/data); skipped, naming the folders looked in, without them")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("needs_data"):
        missing = missing_data(*marker.args)
        if missing:
            pytest.skip(missing)


def missing_data(name: str) -> str:
    """Why data set ``name`` cannot be read offline (``""`` if its files are there)."""
    where = locate_split(name)
    if where.folder is not None:
        return ""
    return (f"{name} IDX files not found in {where.describe()}; set $CIRCUITS_DATA or put "
            f"the shared data folder at {SHARED_DATA}")


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """``urlopen`` serves ``file:`` URLs only: a test that tries the network fails loudly."""
    def local_only(url, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202 (urlopen's)
        target = url if isinstance(url, str) else url.full_url
        if not target.startswith("file:"):
            raise AssertionError(f"a test tried to open {target}: tests must not use the network")
        return _URLOPEN(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", local_only)

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
