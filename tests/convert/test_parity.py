"""Parity with real Caffe: every fixture net, converted by us, reproduces every blob Caffe computed.

Fixtures (tests/fixtures/<case>/) are written by tools/caffe under BVLC Caffe: the model files and
``reference.h5`` with the inputs and every blob after Caffe's forward pass. Each model file form
present (binary, HDF5, legacy V1) is converted and run on the same inputs.
"""
from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
import torch

from conftest import FIXTURES, case_meta, fixture_cases, rel_error
from convert.checkpoint import save_checkpoint
from convert.modules import Crop
from convert.reader import read_net
from convert.runtime import CaffeModule, load, load_caffe

TOLERANCE = 1e-5
CASES = fixture_cases()
# (weights, prototxt) pairs a fixture folder may hold; each present pair is a separate test.
FORMS = {
    "binary": ("net.caffemodel", "net.prototxt"),
    "hdf5": ("net.caffemodel.h5", "net.prototxt"),
    "v1": ("v1.caffemodel", "v1.prototxt"),
}
PAIRS = [pytest.param(case, form, id=f"{case}-{form}") for case in CASES for form, files in FORMS.items()
         if all((FIXTURES / case / name).exists() for name in files)]


def test_fixtures_exist():
    assert CASES, f"no real-Caffe fixtures in {FIXTURES}: generate them with tools/caffe (see DESIGN.md)"


def reference(case: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    with h5py.File(FIXTURES / case / "reference.h5", "r", locking=False) as f:  # others may read it too
        inputs = {name: f["inputs"][name][()] for name in f["inputs"]}
        blobs = {name: f["blobs"][name][()] for name in f["blobs"]}
    return inputs, blobs


def run(model: CaffeModule, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    with torch.inference_mode():
        blobs = model(**{name: torch.from_numpy(value) for name, value in inputs.items()}, all_blobs=True)
    return {name: value.numpy() for name, value in blobs.items()}


@pytest.mark.parametrize(("case", "form"), PAIRS)
def test_every_blob_matches_caffe(case, form):
    weights, prototxt = FORMS[form]
    model = load_caffe(FIXTURES / case / weights, FIXTURES / case / prototxt)
    assert not model.training
    inputs, expected = reference(case)
    ours = run(model, inputs)

    meta = case_meta(case)
    for output in meta["outputs"]:
        assert output in ours, f"output blob '{output}' not produced"
    compared = [name for name in expected if name in ours]
    assert set(meta["outputs"]) <= set(compared)
    errors = {name: rel_error(ours[name], expected[name]) for name in compared}
    worst = max(errors, key=errors.get)
    assert errors[worst] <= TOLERANCE, f"blob '{worst}' differs from Caffe by {errors[worst]:.3g} (relative)"

    for output in meta["outputs"]:
        ref = expected[output]
        if ref.ndim == 4 and ref.shape[1] > 1:  # score maps: the predicted class must not change
            np.testing.assert_array_equal(ours[output].argmax(1), ref.argmax(1), err_msg=output)


def per_axis(offsets: list[int] | tuple[int, ...], axis: int) -> tuple[int, ...]:
    """Caffe's reading of a Crop's offsets for a 4-D blob: none -> 0, one -> every cropped axis."""
    count = 4 - axis % 4
    return tuple(offsets) if len(offsets) > 1 else tuple(offsets or [0]) * count


@pytest.mark.parametrize(("case", "form"), [p for p in PAIRS if case_meta(p.values[0])["crop_offsets"]])
def test_crop_offsets_match_the_fixture(case, form):
    """The offsets each Crop uses (given, or derived for the V1 CROP layers that have none) are the
    ones Caffe used; the fixture keys them by the crop's top blob (the CVPR nets repeat "crop")."""
    weights, prototxt = FORMS[form]
    model = load_caffe(FIXTURES / case / weights, FIXTURES / case / prototxt)
    crops = {step.tops[0]: step.module for step in model.layers() if isinstance(step.module, Crop)}
    for top, values in case_meta(case)["crop_offsets"].items():
        crop = crops[top]
        assert per_axis(crop.offsets, crop.axis) == per_axis(values, crop.axis), top


@pytest.mark.parametrize("case", [c for c in ("voc-fcn8s", "cvpr-fcn8s", "layer-scale-bottom") if c in CASES])
def test_state_dict_round_trips(case):
    """A module's state dict loads strictly into a fresh module and gives the same outputs; the
    diagonal-deconvolution fast path is re-decided from the loaded weights."""
    files = (FIXTURES / case / "net.caffemodel", FIXTURES / case / "net.prototxt")
    model, other = load_caffe(*files), load_caffe(*files)
    inputs, _ = reference(case)
    before = run(model, inputs)
    state = {key: value.clone() for key, value in model.state_dict().items()}
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.zero_()
    run(other, inputs)  # all-zero deconvolutions are diagonal: the fast path is now cached
    other.load_state_dict(state, strict=True)
    after = run(other, inputs)
    assert all(np.array_equal(before[name], after[name]) for name in before)


@pytest.mark.parametrize("case", [c for c in ("voc-fcn8s", "cvpr-fcn8s") if c in CASES])
def test_converted_file_runs_like_the_caffemodel(case, tmp_path):
    """``load(.pth)`` rebuilds the same module: same keys, bit-identical outputs, metadata kept."""
    files = (FIXTURES / case / "net.caffemodel", FIXTURES / case / "net.prototxt")
    architecture = case_meta(case)["architecture"]
    save_checkpoint(read_net(*files), tmp_path / "model.pth", architecture=architecture, source={"file": "x"})
    loaded, direct = load(tmp_path / "model.pth"), load_caffe(*files)
    assert not loaded.training and loaded.meta["architecture"] == architecture
    assert list(loaded.state_dict()) == list(direct.state_dict())
    inputs, _ = reference(case)
    ours, theirs = run(loaded, inputs), run(direct, inputs)
    assert all(np.array_equal(ours[name], theirs[name]) for name in theirs)


@pytest.mark.parametrize("case", [c for c in ("voc-fcn8s", "voc-fcn-alexnet") if c in CASES])
def test_any_input_size_gives_a_full_size_score(case):
    """Nothing is fixed to the prototxt's example shape: the crops follow the input."""
    model = load_caffe(FIXTURES / case / "net.caffemodel", FIXTURES / case / "net.prototxt")
    for height, width in [(1, 1), (17, 64), (63, 30)]:
        with torch.inference_mode():
            score = model(torch.randn(1, 3, height, width))["score"]
        assert score.shape[0] == 1 and score.shape[2:] == (height, width)


WIDE_CASES = [c for c in ("voc-fcn8s", "voc-fcn32s", "voc-fcn-alexnet", "siftflow-fcn8s") if c in CASES]


@pytest.mark.parametrize("case", WIDE_CASES)
def test_every_blob_matches_caffe_with_every_fast_path_forced(case, monkeypatch, fake_timer):
    """Whatever this machine measures, make Winograd F(4x4) and the GEMM win every layer that has
    them (conv1_1's pad 100 included), with the accuracy gate off, and hold every blob to the same
    budget and argmax."""
    from convert import tuning
    from convert.modules import Convolution

    fake_timer({"winograd": 1.0, "gemm": 1.0, "conv2d": 2.0}, default=3.0)
    monkeypatch.setattr(tuning, "ACCURACY_FACTOR", math.inf)
    model = load_caffe(FIXTURES / case / "net.caffemodel", FIXTURES / case / "net.prototxt")
    inputs, expected = reference(case)
    chosen = {}
    hooks = [step.module.register_forward_pre_hook(
                 lambda module, args, name=step.name: chosen.__setitem__(name, module.path(args[0])))
             for step in model.layers() if isinstance(step.module, Convolution)]
    ours = run(model, inputs)
    for hook in hooks:
        hook.remove()
    assert "winograd" in chosen.values() and "gemm" in chosen.values(), chosen
    assert set(chosen.values()) <= {"winograd", "gemm", "conv2d"}
    for name in expected:
        if name in ours:
            assert rel_error(ours[name], expected[name]) <= TOLERANCE, name
            assert ours[name].flags["C_CONTIGUOUS"], name
    for output in case_meta(case)["outputs"]:
        np.testing.assert_array_equal(ours[output].argmax(1), expected[output].argmax(1), err_msg=output)
