"""Every zoo model, built by fcn_ref from a caffemodel written by real Caffe, against Caffe's forward.

The fixtures (tests/fixtures/<case>/) are reduced-width nets with the zoo graphs; reference.h5 holds
every blob of Caffe's own forward pass. A missing fixture is a failure, not a skip.
"""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from fcn_ref.recognize import recognize
from convert.checkpoint import save_checkpoint
from convert.reader import read_net
import fcn_ref
from fcn_ref.models import ARCHITECTURES
from conftest import FIXTURES, case_meta, rel_error

# Fixture case -> the fcn_ref architecture it must be recognized as.
ZOO = {
    "voc-fcn32s": "fcn32s",
    "voc-fcn16s": "fcn16s",
    "voc-fcn8s": "fcn8s",
    "voc-fcn8s-atonce": "fcn8s-atonce",
    "voc-fcn-alexnet": "fcn-alexnet",
    "siftflow-fcn8s": "siftflow-fcn8s",
    "pascalcontext-fcn8s": "fcn8s",
    "nyud-fcn32s-color-hha": "nyud-fcn32s-color-hha",
    "nyud-fcn32s-color-d": "nyud-fcn32s-color-d",
    "cvpr-fcn8s": "cvpr-fcn8s",
    "siftflow-fcn32s": "siftflow-fcn32s",
    "siftflow-fcn16s": "siftflow-fcn16s",
    "pascalcontext-fcn32s": "fcn32s",
    "pascalcontext-fcn16s": "fcn16s",
    "nyud-fcn32s-color": "fcn32s",
    "nyud-fcn32s-hha": "fcn32s",
    "cvpr-fcn32s": "cvpr-fcn32s",
    "cvpr-fcn16s": "cvpr-fcn16s",
}
CLASSIFIERS = ("vgg16-classifier", "caffenet-classifier")
TOLERANCE = 1e-5


def _case_dir(case: str):
    path = FIXTURES / case
    assert (path / "net.caffemodel").exists(), f"fixture {case} is missing: run the Caffe fixture generator"
    return path


def _reference(case: str) -> tuple[list[torch.Tensor], dict[str, np.ndarray]]:
    meta = case_meta(case)
    with h5py.File(_case_dir(case) / "reference.h5", "r") as f:
        inputs = [torch.from_numpy(f["inputs"][name][...]) for name in meta["inputs"]]
        outputs = {name: f["blobs"][name][...] for name in meta["outputs"]}
    return inputs, outputs


def _as_dict(result, output_names) -> dict[str, np.ndarray]:
    if isinstance(result, dict):
        return {k: v.numpy() for k, v in result.items()}
    (name,) = output_names
    return {name: result.numpy()}


def _check_outputs(model, case: str) -> None:
    inputs, reference = _reference(case)
    with torch.no_grad():
        ours = _as_dict(model(*inputs), case_meta(case)["outputs"])
    assert set(ours) == set(reference)
    for name, ref in reference.items():
        assert rel_error(ours[name], ref) <= TOLERANCE, f"{case}/{name}: rel error {rel_error(ours[name], ref):.2e}"
        assert np.array_equal(ours[name].argmax(1), ref.argmax(1)), f"{case}/{name}: argmax differs"


@pytest.mark.parametrize("case", sorted(ZOO))
def test_zoo_model_matches_caffe(case):
    model = ARCHITECTURES[ZOO[case]].from_caffemodel(_case_dir(case) / "net.caffemodel")
    assert type(model).arch_name == ZOO[case] and not model.training
    _check_outputs(model, case)


@pytest.mark.parametrize("case", sorted(ZOO))
def test_recognized_as_expected_class(case):
    guess = recognize(read_net(_case_dir(case) / "net.caffemodel"))
    assert guess is not None and guess["name"] == ZOO[case]
    expected = case_meta(case)["architecture"]  # written by the fixture generator
    assert guess == expected


@pytest.mark.parametrize("case", sorted(ZOO))
def test_crop_offsets_match_the_prototxt(case):
    """Our offsets come from coordinate maps; the fixture's come from Caffe's NetSpec (coord_map.crop)."""
    model = ARCHITECTURES[ZOO[case]].from_caffemodel(_case_dir(case) / "net.caffemodel")
    written = case_meta(case)["crop_offsets"]
    ours = model.crop_offsets()
    # Keyed by the cropped top blob (the CVPR file names all three Crop layers 'crop').
    assert {name: [offset] for name, offset in ours.items()} == written


@pytest.mark.parametrize("case", CLASSIFIERS)
def test_classifiers_are_not_fcns(case):
    assert recognize(read_net(_case_dir(case) / "net.caffemodel")) is None
    assert case_meta(case)["architecture"] is None


def test_load_converted_file_gives_the_zoo_class(tmp_path):
    net = read_net(_case_dir("voc-fcn8s") / "net.caffemodel")
    out = tmp_path / "fcn8s.pth"
    save_checkpoint(net, out, architecture=recognize(net), source={"file": "net.caffemodel"})
    model = fcn_ref.load(out)
    assert isinstance(model, fcn_ref.FCN8s) and not model.training
    _check_outputs(model, "voc-fcn8s")


def test_from_caffemodel_refuses_another_architecture():
    with pytest.raises(fcn_ref.CaffeFormatError, match="fcn8s"):
        fcn_ref.FCN32s.from_caffemodel(_case_dir("voc-fcn8s") / "net.caffemodel")


@pytest.mark.parametrize("with_prototxt", [False, True])
def test_cvpr_fcn8s_from_the_legacy_v1_files(with_prototxt):
    """The CVPR release format: V1 'layers', CROP (enum 40) without offsets. Caffe ran the same
    weights through the modern net; the V1 file must give the same model and the same scores."""
    folder = _case_dir("cvpr-fcn8s")
    model = fcn_ref.CVPRFCN8s.from_caffemodel(folder / "v1.caffemodel",
                                              folder / "v1.prototxt" if with_prototxt else None)
    assert model.crop_offsets() == {"score-pool4c": 5, "score-pool3c": 9, "upscore": 31}
    _check_outputs(model, "cvpr-fcn8s")


def test_a_file_from_python_m_convert_is_recognized_on_loading(tmp_path):
    """convert knows no models: it stores no architecture, and fcn_ref.load recognizes the net."""
    from convert.cli import main as convert_main
    from convert.checkpoint import read_checkpoint

    out = tmp_path / "fcn8s.pth"
    assert convert_main([str(_case_dir("voc-fcn8s") / "net.caffemodel"), "-o", str(out)]) == 0
    assert read_checkpoint(out).architecture is None
    model = fcn_ref.load(out)
    assert isinstance(model, fcn_ref.FCN8s) and model.meta["architecture"] == case_meta("voc-fcn8s")["architecture"]
    _check_outputs(model, "voc-fcn8s")
