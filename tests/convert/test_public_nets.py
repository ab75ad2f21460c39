"""Public Caffe deploy nets beyond the FCN zoo, blob for blob against real Caffe (default tier).

tests/fixtures/public-nets/<net>/ holds each net of tools/caffe/public_nets at reduced width
(same layers and geometry as the published deploy), with weights written by real Caffe and
Caffe's own values of every blob (seeded positions of the large ones) at the deploy size and at
an odd size (tools/caffe/make_public_nets.py). The full-width nets run live in
tests/test_oracle_public_nets.py.
"""
from __future__ import annotations

import sys

import pytest
import torch

from conftest import FIXTURES, ROOT
from convert import load_caffe

sys.path.insert(0, str(ROOT / "tools" / "caffe"))
from public_nets import NETS, reference  # noqa: E402

PUBLIC = FIXTURES / "public-nets"


def test_suite_is_complete():
    """At least ten nets of different families, each with its fixture."""
    assert len(NETS) >= 10 and len({n.family for n in NETS.values()}) == len(NETS)
    assert sorted(p.name for p in PUBLIC.iterdir()) == sorted(NETS), "rerun tools/caffe/make_public_nets.py"


@pytest.mark.parametrize("net", list(NETS))
def test_fixture_is_the_generators_net(net):
    """The committed prototxt is what the generator writes today (else: regenerate the fixtures)."""
    assert (PUBLIC / net / "net.prototxt").read_text() == NETS[net].net("small").text()


@pytest.mark.parametrize("size", reference.SIZES)
@pytest.mark.parametrize("net", list(NETS))
def test_every_blob_matches_caffe(net, size):
    spec = NETS[net]
    if spec.small.waits_for:
        pytest.skip(f"needs {spec.small.waits_for}")
    folder = PUBLIC / net
    model = load_caffe(folder / "net.caffemodel", folder / "net.prototxt")
    name, x = reference.caffe_input(folder, size)
    with torch.inference_mode():
        ours = model(**{name: torch.from_numpy(x)}, all_blobs=True)
    errors = reference.errors(ours, folder, size)
    worst = max(errors, key=errors.get)
    assert errors[worst] <= spec.small.tolerance, f"{net} ({size}): blob '{worst}' differs from Caffe by {errors[worst]:.3g}"
