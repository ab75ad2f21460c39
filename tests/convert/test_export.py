"""``python -m convert --format onnx|safetensors|pth`` and ``convert.export.export``.

ONNX: every zoo fixture, exported at one size and run in ONNX Runtime on Caffe's own inputs (other
sizes), against Caffe's outputs. safetensors: the round trip into ``fcn_ref.load`` and
``convert.load``, against Caffe's outputs and the .pth's tensors. They need the ``onnx`` and ``safetensors`` extras.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

import convert
import fcn_ref
from conftest import FIXTURES, ROOT, case_meta, fixture_cases, rel_error
from convert.checkpoint import FORMAT
from convert.errors import CaffeFormatError
from convert.export import FORMATS, default_output, export

ONNX = "needs the onnx extra: pip install 'fcn-ref[onnx]'"
SAFETENSORS = "needs the safetensors extra: pip install 'fcn-ref[safetensors]'"
ZOO_CASES = [case for case in fixture_cases() if case_meta(case)["architecture"]]
TOLERANCE = 1e-5


def _reference(case: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    meta = case_meta(case)
    with h5py.File(FIXTURES / case / "reference.h5", "r") as f:
        return ({name: f["inputs"][name][...] for name in meta["inputs"]},
                {name: f["blobs"][name][...] for name in meta["outputs"]})


def _check(outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray], what: str) -> None:
    assert set(outputs) == set(reference), what
    for name, ref in reference.items():
        error = rel_error(outputs[name], ref)
        assert error <= TOLERANCE, f"{what}/{name}: rel error {error:.2e}"
        assert np.array_equal(outputs[name].argmax(1), ref.argmax(1)), f"{what}/{name}: argmax differs"


def test_every_zoo_fixture_is_covered():
    assert len(ZOO_CASES) >= 18


@pytest.mark.parametrize("case", ZOO_CASES)
def test_onnx_in_onnxruntime_matches_caffe(case, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason=ONNX)
    pytest.importorskip("onnx", reason=ONNX)
    path = export(FIXTURES / case / "net.caffemodel", tmp_path / "net.onnx")
    inputs, reference = _reference(case)
    assert all(x.shape[2:] != (67, 59) for x in inputs.values())  # traced at another size
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    outputs = dict(zip(names, session.run(names, inputs)))
    _check(outputs, reference, case)


def test_onnx_has_dynamic_sizes_and_the_files_facts(tmp_path):
    onnx = pytest.importorskip("onnx", reason=ONNX)
    path = export(FIXTURES / "voc-fcn8s" / "net.caffemodel", tmp_path / "fcn8s.onnx")
    model = onnx.load(str(path))
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "data_height", "data_width"]
    facts = {p.key: p.value for p in model.metadata_props}
    assert facts["name"] == "voc-fcn8s" and facts["format"] == FORMAT
    assert json.loads(facts["source"])["file"] == "net.caffemodel"


@pytest.mark.parametrize("case", ["voc-fcn8s-atonce", "nyud-fcn32s-color-hha"])
def test_safetensors_round_trip(case, tmp_path):
    safetensors = pytest.importorskip("safetensors.torch", reason=SAFETENSORS)
    pth = export(FIXTURES / case / "net.caffemodel", tmp_path / "net.pth")
    st = export(pth, tmp_path / "net.safetensors")  # re-exported from the converted file
    inputs, reference = _reference(case)
    tensors = [torch.from_numpy(inputs[name]) for name in case_meta(case)["inputs"]]

    model = fcn_ref.load(st)
    assert type(model).arch_name == case_meta(case)["architecture"]["name"]
    with torch.no_grad():
        ours = model(*tensors)
    outputs = ours if isinstance(ours, dict) else {case_meta(case)["outputs"][0]: ours}
    _check({k: v.numpy() for k, v in outputs.items()}, reference, case)
    with torch.no_grad():
        generic = convert.load(st)(*tensors)
    _check({k: v.numpy() for k, v in generic.items()}, reference, case)

    payload = torch.load(pth, weights_only=True)
    plain = safetensors.load_file(str(st))  # no fcn-ref code: the tensors are all there
    assert plain.keys() == payload["state_dict"].keys()
    assert all(torch.equal(plain[k], payload["state_dict"][k]) for k in plain)
    assert convert.load(st).meta["source"] == payload["source"]

    back = export(st, tmp_path / "again.pth")
    again = torch.load(back, weights_only=True)
    assert again["net"] == payload["net"] and again["architecture"] == payload["architecture"]
    assert all(torch.equal(again["state_dict"][k], v) for k, v in payload["state_dict"].items())


def test_a_folder_is_one_error(tmp_path):
    with pytest.raises(CaffeFormatError, match="not a regular file"):
        convert.load(tmp_path)


def test_damaged_safetensors_is_one_error(tmp_path):
    pytest.importorskip("safetensors", reason=SAFETENSORS)
    st = export(FIXTURES / "voc-fcn32s" / "net.caffemodel", tmp_path / "net.safetensors")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(st.read_bytes()[: st.stat().st_size // 2])
    with pytest.raises(CaffeFormatError, match="cut.safetensors"):
        convert.load(cut)
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CaffeFormatError, match="not written by python -m convert"):
        fcn_ref.load(tmp_path / "foreign.safetensors")


def test_cli_format_writes_each_and_fails_cleanly(tmp_path):
    pytest.importorskip("safetensors", reason=SAFETENSORS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    model = tmp_path / "fcn32s.caffemodel"
    model.write_bytes((FIXTURES / "voc-fcn32s" / "net.caffemodel").read_bytes())
    run = subprocess.run([sys.executable, "-m", "convert", str(model), "--format", "safetensors"],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "fcn32s.safetensors").exists()
    bad = tmp_path / "bad.caffemodel"
    bad.write_bytes(b"\x08\x01" * 10)
    run = subprocess.run([sys.executable, "-m", "convert", str(bad), "--format", "onnx"],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 1 and run.stderr.count("\n") == 1 and "bad.caffemodel" in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.caffemodel", "fcn32s.caffemodel",
                                                           "fcn32s.safetensors"]


def test_default_output_names():
    assert default_output(FIXTURES / "x.caffemodel.h5", "onnx").name == "x.onnx"
    assert default_output(FIXTURES / "x.pth", "safetensors").name == "x.safetensors"
    assert set(FORMATS) == {"pth", "safetensors", "onnx"}
