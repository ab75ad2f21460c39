"""The zoo registry: its published rows (what evaluate relies on, and how they are found) and its entries."""
from __future__ import annotations

import pytest

from fcn_ref.models import ARCHITECTURES
from fcn_ref.zoo import PUBLISHED, ZOO, lookup, weights_named

IMAGE_SETS = {"seg11valid", "VOC2011 test", "VOC2012 test"}


def test_every_row_says_where_and_on_what_it_was_measured() -> None:
    for row in PUBLISHED:
        assert row.image_set in IMAGE_SETS, row
        assert row.source and row.model, row
        assert row.file is None or row.file.endswith(".caffemodel"), row
        for value in (row.pixel_acc, row.mean_acc, row.mean_iu, row.fw_iu):
            assert value is None or 30 < value < 100, row  # percent, not fractions
        if row.pixel_acc is not None:  # the paper's metrics are ordered like this for every FCN
            assert row.pixel_acc > row.fw_iu > row.mean_iu and row.mean_acc > row.mean_iu, row


@pytest.mark.parametrize("key", ["fcn-8s-pascal.caffemodel", "fcn-8s-pascal", "/models/cvpr/fcn-8s-pascal.caffemodel"])
def test_cvpr_fcn8s_row_by_file_name(key: str) -> None:
    [row] = lookup(key, "seg11valid")
    assert (row.pixel_acc, row.mean_acc, row.mean_iu, row.fw_iu) == (90.3, 75.9, 62.7, 83.2)
    assert "Table 2" in row.source


def test_heavy_rows_and_image_set_filter() -> None:
    assert [r.mean_iu for r in lookup("fcn8s-heavy-pascal.caffemodel", "seg11valid")] == [65.5, 65.51]
    assert [r.image_set for r in lookup("fcn8s-heavy-pascal.caffemodel")] == ["seg11valid", "VOC2012 test", "seg11valid"]
    assert [r.mean_iu for r in lookup("fcn-alexnet-pascal.caffemodel", "seg11valid")] == [48.0]
    assert lookup("fcn32s-heavy-pascal.caffemodel", "seg11valid")[1].fw_iu == 83.47
    assert lookup("fcn-32s-fixed", "seg11valid")[0].file is None  # found by model name
    assert lookup("fcn8s-heavy-pascal.caffemodel", "val") == []
    assert lookup("unknown.caffemodel") == []


def test_every_released_voc_model_has_a_seg11valid_mean_iu() -> None:
    files = {"fcn-32s-pascal.caffemodel", "fcn-16s-pascal.caffemodel", "fcn-8s-pascal.caffemodel",
             "fcn32s-heavy-pascal.caffemodel", "fcn16s-heavy-pascal.caffemodel",
             "fcn8s-heavy-pascal.caffemodel", "fcn8s-atonce-pascal.caffemodel",
             "fcn-alexnet-pascal.caffemodel"}
    assert {r.file for r in PUBLISHED if r.image_set == "seg11valid" and r.file} == files


def test_every_registry_entry_is_complete_and_fits_its_model() -> None:
    for entry in ZOO:
        model = ARCHITECTURES[entry.architecture]
        assert entry.file.endswith(".caffemodel") and weights_named(entry.file) is entry
        assert len(entry.means) == len(entry.channel_order) == len(model.input_names), entry.file
        assert entry.sha256 is None or (len(entry.sha256) == 64 and int(entry.sha256, 16) >= 0)
        assert entry.classes is None or len(entry.classes) == entry.num_classes
        assert all(row.file == entry.file for row in entry.published)
    assert len({entry.file for entry in ZOO}) == len(ZOO)
