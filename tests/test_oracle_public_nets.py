"""Oracle tier: the public-net suite at published width and deploy size against live BVLC Caffe.

For each net of tools/caffe/public_nets, real Caffe (tools/caffe/build.sh) writes the full-width
net with calibrated random weights into a temporary folder and records every value of every blob
at the deploy size and at an odd size (tools/caffe/make_public_nets.py --variant full); the
converted net must match every blob within the net's tolerance (1e-5, or twice its documented fp32
floor). Gigabytes of blobs for the largest nets (Dilation8 at 900x900): the folder is removed
after each net. Run with ``python -m pytest -m oracle``.
"""
from __future__ import annotations

import shutil
import sys

import pytest
import torch

from conftest import ROOT
from convert import load_caffe

sys.path.insert(0, str(ROOT / "tools" / "caffe"))
from public_nets import NETS, reference  # noqa: E402

pytestmark = pytest.mark.oracle


@pytest.mark.parametrize("net", list(NETS))
def test_full_width_net_matches_live_caffe(net, live_caffe, tmp_path):
    spec = NETS[net]
    if spec.full.waits_for:
        pytest.skip(f"needs {spec.full.waits_for}")
    try:
        live_caffe(ROOT / "tools" / "caffe" / "make_public_nets.py", "--variant", "full", "--only", net,
                   "--out", tmp_path)
        folder = tmp_path / net
        model = load_caffe(folder / "net.caffemodel", folder / "net.prototxt")
        for size in reference.SIZES:
            name, x = reference.caffe_input(folder, size)
            with torch.inference_mode():
                ours = model(**{name: torch.from_numpy(x)}, all_blobs=True)
            errors = reference.errors(ours, folder, size)
            del ours
            worst = max(errors, key=errors.get)
            assert errors[worst] <= spec.full.tolerance, \
                f"{net} ({size}, full width): blob '{worst}' differs from Caffe by {errors[worst]:.3g}"
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)
