"""Oracle tier: the Caffe net that fcn_ref.save writes runs in real BVLC Caffe and computes the model.

The file's prototxt text and its tensors (as a Net::ToHDF5-style weights file) go to live Caffe;
its forward on fresh inputs must equal the PyTorch model's. Zoo models load real-Caffe fixture
weights; the FCN-4s of test_fcn4s (a net Caffe never saw) gets random weights in every layer.
"""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

import fcn_ref
from convert.checkpoint import read_checkpoint, structure_text
from fcn_ref.models import ARCHITECTURES
from conftest import FIXTURES, ROOT, rel_error
from test_fcn4s import FCN4s
from test_zoo_parity import ZOO

pytestmark = pytest.mark.oracle
CASES = ("voc-fcn8s-atonce", "voc-fcn-alexnet", "siftflow-fcn16s", "nyud-fcn32s-color-d",
         "nyud-fcn32s-color-hha", "cvpr-fcn8s")


def _caffe_files(path, folder) -> tuple:
    """The saved file as Caffe reads it: prototxt text and an HDF5 weights file (data/<layer>/<i>)."""
    net = read_checkpoint(path).net
    (folder / "net.prototxt").write_text(structure_text(net))
    with h5py.File(folder / "net.caffemodel.h5", "w") as f:
        data = f.create_group("data")
        for layer in net.layers:
            if layer.blobs:
                group = data.create_group(layer.name)
                for i, blob in enumerate(layer.blobs):
                    group.create_dataset(str(i), data=np.asarray(blob, dtype=np.float32))
    return folder / "net.prototxt", folder / "net.caffemodel.h5"


def _check_in_caffe(model, live_caffe, tmp_path, size=(53, 61)) -> None:
    model.eval()
    fcn_ref.save(model, tmp_path / "model.pth")
    prototxt, weights = _caffe_files(tmp_path / "model.pth", tmp_path)
    rng = np.random.default_rng(7)
    inputs = {name: (rng.standard_normal((1, c, *size)) * 30).astype(np.float32)
              for name, c in zip(model.input_names, model.input_channels())}
    with h5py.File(tmp_path / "inputs.h5", "w") as f:
        for name, array in inputs.items():
            f.create_dataset(f"inputs/{name}", data=array)
    live_caffe(ROOT / "tools" / "caffe" / "run_forward.py", prototxt, weights, tmp_path / "inputs.h5",
               tmp_path / "out.h5")
    with torch.no_grad():
        ours = model(*[torch.from_numpy(a) for a in inputs.values()])
    ours = ours if isinstance(ours, dict) else {read_checkpoint(tmp_path / "model.pth").net.layers[-1].tops[0]: ours}
    with h5py.File(tmp_path / "out.h5", "r") as f:
        for name, score in ours.items():
            theirs = f["blobs"][name][()]
            assert rel_error(score.numpy(), theirs) <= 1e-5, name
            assert np.array_equal(score.numpy().argmax(1), theirs.argmax(1)), name


@pytest.mark.parametrize("case", CASES)
def test_saved_zoo_model_runs_in_caffe(case, live_caffe, tmp_path):
    _check_in_caffe(ARCHITECTURES[ZOO[case]].from_caffemodel(FIXTURES / case / "net.caffemodel"), live_caffe,
                    tmp_path)


def test_saved_fcn4s_runs_in_caffe(live_caffe, tmp_path):
    torch.manual_seed(0)
    model = FCN4s(num_classes=3, widths=[4, 4, 8, 8, 8], fc_widths=[8, 8])
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    _check_in_caffe(model, live_caffe, tmp_path, size=(70, 45))
