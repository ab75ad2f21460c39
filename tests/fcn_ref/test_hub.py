"""hubconf.py: one torch.hub entry per released caffemodel, loading local weights with metadata."""
from __future__ import annotations

import importlib.util

import h5py
import numpy as np
import pytest
import torch

from conftest import FIXTURES, ROOT, rel_error
from convert.errors import CaffeFormatError
from convert.export import export
from fcn_ref.hub import ENTRIES
from fcn_ref.models import ARCHITECTURES
from fcn_ref.zoo import ZOO
from voc.datasets import VOC_CLASSES
from voc.means import VOC_MEAN


def _hubconf():
    spec = importlib.util.spec_from_file_location("hubconf", ROOT / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _scores(case: str, model) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(FIXTURES / case / "reference.h5", "r") as f:
        data, reference = f["inputs/data"][...], f["blobs"]
        ref = {name: reference[name][...] for name in reference if name.startswith("score")}
    with torch.no_grad():
        out = model(torch.from_numpy(data))
    return (out["score_sem"], ref["score_sem"]) if isinstance(out, dict) else (out, ref["score"])


def test_every_release_has_an_entry():
    hubconf = _hubconf()
    assert sorted(ENTRIES.values()) == sorted(w.file for w in ZOO)
    assert all(callable(getattr(hubconf, name)) for name in ENTRIES)
    assert hubconf.fcn8s.__doc__.startswith("fcn8s as released in fcn8s-heavy-pascal.caffemodel")


def test_fcn8s_from_a_caffemodel_with_its_metadata():
    model = torch.hub.load(str(ROOT), "fcn8s", weights=str(FIXTURES / "voc-fcn8s" / "net.caffemodel"),
                           source="local")
    assert type(model).arch_name == "fcn8s" and not model.training
    ours, caffe = _scores("voc-fcn8s", model)
    assert rel_error(ours.numpy(), caffe) <= 1e-5
    meta = model.meta
    assert meta["classes"] == VOC_CLASSES and meta["num_classes"] == 21
    assert meta["preprocessing"]["mean"] == [list(VOC_MEAN)] and meta["preprocessing"]["channels"] == ["BGR"]
    assert 65.5 in [row["mean_iu"] for row in meta["published"] if row["image_set"] == "seg11valid"]


def test_siftflow_from_a_converted_file(tmp_path):
    pth = export(FIXTURES / "siftflow-fcn8s" / "net.caffemodel", tmp_path / "siftflow.pth")
    model = torch.hub.load(str(ROOT), "siftflow_fcn8s", weights=str(pth), source="local")
    ours, caffe = _scores("siftflow-fcn8s", model)
    assert rel_error(ours.numpy(), caffe) <= 1e-5
    assert model.meta["dataset"] == "SIFT Flow" and model.meta["num_classes"] == 33
    assert model.meta["source"]["file"] == "net.caffemodel"  # what the converted file itself says


def test_weights_of_another_architecture_are_refused():
    with pytest.raises(CaffeFormatError, match="hub entry 'fcn32s' is a fcn32s"):
        torch.hub.load(str(ROOT), "fcn32s", weights=str(FIXTURES / "voc-fcn8s" / "net.caffemodel"),
                       source="local")


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_every_entry_builds_untrained(entry):
    model = torch.hub.load(str(ROOT), entry, source="local", widths=[2, 2, 2, 2, 2], fc_widths=[2, 2])
    release = next(w for w in ZOO if w.file == ENTRIES[entry])
    assert type(model) is ARCHITECTURES[release.architecture]
    assert model.config.num_classes == release.num_classes == model.meta["num_classes"]
