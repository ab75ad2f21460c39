"""Shared test helpers: where the real-Caffe fixtures are, and whether live Caffe is available."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
CAFFE_PYTHON = ROOT / "tools" / "caffe" / "python3"


def fixture_cases(prefix: str = "") -> list[str]:
    """Names of the fixture folders (made by real Caffe), optionally those starting with ``prefix``."""
    if not FIXTURES.is_dir():
        return []
    return sorted(p.name for p in FIXTURES.iterdir() if (p / "case.json").exists() and p.name.startswith(prefix))


def case_meta(case: str) -> dict:
    return json.loads((FIXTURES / case / "case.json").read_text())


def rel_error(ours: np.ndarray, ref: np.ndarray) -> float:
    """max |ours - ref| / max |ref|: the parity measure used throughout the suite."""
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape, f"shape {ours.shape} != reference {ref.shape}"
    scale = np.abs(ref).max() if ref.size else 0.0
    diff = np.abs(ours - ref).max() if ref.size else 0.0
    return float(diff / scale) if scale > 0 else float(diff)


def caffe_available() -> bool:
    home = Path(os.environ.get("FCN_CAFFE_HOME", Path.home() / ".cache" / "fcn-ref" / "caffe"))
    return (home / "brocolli-caffe-9.0.2" / "python" / "caffe" / "_caffe.so").exists()


@pytest.fixture
def live_caffe():
    """Run a script under real Caffe; skip (oracle tier) when tools/caffe/build.sh has not been run."""
    if not caffe_available():
        pytest.skip("live Caffe not built: run tools/caffe/build.sh (about 10 minutes) to enable the oracle tier")

    def run(*args: str | os.PathLike) -> None:
        subprocess.run([str(CAFFE_PYTHON), *map(str, args)], check=True, capture_output=True)

    return run


@pytest.fixture(autouse=True, scope="session")
def fastpath_cache(tmp_path_factory):
    """Measured fast-path choices (``convert.tuning``) go to a fresh folder per test session, never
    to the user's ~/.cache; subprocesses inherit the setting."""
    before = os.environ.get("FCN_FASTPATH_CACHE")
    os.environ["FCN_FASTPATH_CACHE"] = str(tmp_path_factory.mktemp("fastpath-cache"))
    yield os.environ["FCN_FASTPATH_CACHE"]
    if before is None:
        os.environ.pop("FCN_FASTPATH_CACHE", None)
    else:
        os.environ["FCN_FASTPATH_CACHE"] = before


@pytest.fixture
def fake_timer(monkeypatch):
    """Deterministic timing for the fast-path choice: ``fake_timer({"gemm": 1.0}, default=2.0)``
    makes each candidate take the seconds the table gives, in a fresh in-memory record (no disk),
    for every layer (``MIN_MEASURED_FLOPS`` 0: the fixtures' narrow layers are measured too). The
    accuracy gate stays real."""
    from convert import fastpath, tuning

    def install(seconds: dict[str, float], default: float = 2.0) -> None:
        monkeypatch.setenv("FCN_FASTPATH_CACHE", "off")
        monkeypatch.setattr(tuning, "_memory", {})
        monkeypatch.setattr(fastpath, "MIN_MEASURED_FLOPS", 0)
        monkeypatch.setattr(tuning, "time_candidates",
                            lambda runs: {name: seconds.get(name, default) for name in runs})
    return install
