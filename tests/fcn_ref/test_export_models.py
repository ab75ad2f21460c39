"""Every zoo model survives ``torch.export`` (dynamic height and width) and TorchScript tracing,
and the exported programs compute what the eager model computes, at sizes other than the traced one.

The CPU fast paths stay out of traced graphs (``convert.fastpath.exporting``), so what is exported
is the plain-operator form; the eager model here runs its fast paths, so the comparison also checks
that the two agree. One model runs in the default suite, every zoo model in the slow tier.
"""
from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest
import torch

from conftest import FIXTURES, case_meta, fixture_cases, rel_error
from fcn_ref.models import ARCHITECTURES

ZOO_CASES = [case for case in fixture_cases() if case_meta(case)["architecture"]]


def _model_and_inputs(case: str, size: tuple[int, int], seed: int):
    """The zoo model of a fixture, and random inputs of ``size`` with the fixture's channels."""
    meta = case_meta(case)
    model = ARCHITECTURES[meta["architecture"]["name"]].from_caffemodel(FIXTURES / case / "net.caffemodel")
    with h5py.File(FIXTURES / case / "reference.h5", "r") as f:
        channels = [f["inputs"][name].shape[1] for name in meta["inputs"]]
    rng = np.random.RandomState(seed)
    return model, tuple(torch.from_numpy((rng.standard_normal((1, c, *size)) * 50).astype(np.float32))
                        for c in channels)


def _outputs(result) -> dict[str, np.ndarray]:
    items = result.items() if isinstance(result, dict) else [("score", result)]
    return {k: v.detach().numpy() for k, v in items}


def _check_exports(case: str) -> None:
    model, traced_at = _model_and_inputs(case, (61, 45), seed=1)
    _, other = _model_and_inputs(case, (83, 70), seed=2)
    dims = tuple({2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC} for _ in traced_at)
    exported = torch.export.export(model, traced_at, dynamic_shapes=dims, strict=False).module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript
        scripted = torch.jit.trace(model, traced_at, strict=False)
    with torch.no_grad():
        eager = _outputs(model(*other))
        for name, program in (("torch.export", exported), ("TorchScript", scripted)):
            ours = _outputs(program(*other))
            assert ours.keys() == eager.keys()
            for key in eager:
                assert rel_error(ours[key], eager[key]) <= 1e-5, f"{case} {name} {key}"
                assert np.array_equal(ours[key].argmax(1), eager[key].argmax(1)), f"{case} {name} {key}"


def test_fcn8s_exports_and_matches_eager():
    _check_exports("voc-fcn8s")


@pytest.mark.slow
@pytest.mark.parametrize("case", ZOO_CASES)
def test_every_zoo_model_exports_and_matches_eager(case):
    _check_exports(case)
