"""Dataset readers on tiny folders in the real file layouts, generated here."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from voc.datasets import (VOC_CLASSES, SBDSegmentation, VOCSegmentation, read_sbd_mat,
                          resolve_split, sbd_train_ids, seg11valid_ids)
from voc.means import NYUD_HHA_MEAN as NYUD_MEAN_HHA, NYUD_LOG_DEPTH_MEAN as NYUD_MEAN_LOG_DEPTH
from voc.other_datasets import NYUDSegmentation, PascalContextSegmentation, SIFTFlowSegmentation
from voc.palette import VOC_PALETTE, make_palette
from voc.synthetic import make_sbd_folder, make_voc_folder


def test_packaged_seg11valid_is_the_736_image_list() -> None:
    ids = seg11valid_ids()
    assert len(ids) == 736 == len(set(ids))
    assert all(re.fullmatch(r"20(0[7-9]|1[01])_\d{6}", i) for i in ids)
    assert ids[0] == "2007_000033" and ids[-1] == "2011_003271"
    assert ids == sorted(ids)


def test_voc_reader_gives_native_size_rgb_and_raw_palette_indices(tmp_path: Path) -> None:
    ids = make_voc_folder(tmp_path, num_images=3, split="val")
    dataset = VOCSegmentation(tmp_path, "val")
    assert dataset.ids == ids and len(dataset) == 3
    for i, sample in enumerate(dataset):
        png = Image.open(tmp_path / "SegmentationClass" / f"{ids[i]}.png")
        assert png.mode == "P"
        assert np.array_equal(np.asarray(png.getpalette()).reshape(-1, 3)[:256], VOC_PALETTE)
        assert sample.id == ids[i]
        assert sample.image.mode == "RGB"
        assert sample.label.dtype == np.uint8
        assert np.array_equal(sample.label, np.array(png))
        assert (sample.label == 255).any() and sample.label.shape == (sample.image.height, sample.image.width)
    assert {s.image.size for s in dataset} == {(40, 30), (30, 44)}


def test_splits_resolve_by_name_path_or_packaged(tmp_path: Path) -> None:
    ids = make_voc_folder(tmp_path, num_images=2, split="train")
    assert resolve_split(tmp_path, "train") == ids
    listed = tmp_path / "mine.txt"
    listed.write_text(f"{ids[1]}\n\n{ids[0]}\n")
    assert resolve_split(tmp_path, str(listed)) == [ids[1], ids[0]]
    assert resolve_split(tmp_path, "seg11valid") == seg11valid_ids()
    (tmp_path / "ImageSets/Segmentation/seg11valid.txt").write_text(ids[0] + "\n")
    assert resolve_split(tmp_path, "seg11valid") == [ids[0]]  # the user's own file wins
    with pytest.raises(FileNotFoundError, match="nope"):
        resolve_split(tmp_path, "nope")


def test_voc_reader_refuses_rgb_label_png_and_size_mismatch(tmp_path: Path) -> None:
    ids = make_voc_folder(tmp_path, num_images=2)
    Image.new("RGB", (40, 30)).save(tmp_path / "SegmentationClass" / f"{ids[0]}.png")
    Image.new("L", (5, 5)).save(tmp_path / "SegmentationClass" / f"{ids[1]}.png")
    dataset = VOCSegmentation(tmp_path, "val")
    with pytest.raises(ValueError, match="mode RGB"):
        dataset[0]
    with pytest.raises(ValueError, match="does not match"):
        dataset[1]


def test_greyscale_jpeg_becomes_rgb(tmp_path: Path) -> None:
    ids = make_voc_folder(tmp_path, num_images=1)
    path = tmp_path / "JPEGImages" / f"{ids[0]}.jpg"
    Image.open(path).convert("L").save(path)
    assert VOCSegmentation(tmp_path, "val")[0].image.mode == "RGB"


def test_sbd_reads_gtcls_segmentation_and_drops_seg11valid(tmp_path: Path) -> None:
    in_valid = seg11valid_ids()[:2]
    labels = make_sbd_folder(tmp_path, {"train": ["2008_000002", in_valid[0], "2008_000003", in_valid[1]],
                                        "val": ["2009_000001"]})
    train = SBDSegmentation(tmp_path, "train")
    assert train.ids == ["2008_000002", "2008_000003"] == sbd_train_ids(tmp_path)
    assert SBDSegmentation(tmp_path, "train", exclude=()).ids[1] == in_valid[0]
    for sample in train:
        assert np.array_equal(sample.label, labels[sample.id])
        assert sample.image.size == (36, 28)
    # the reference reads the same field as mat['GTcls'][0]['Segmentation'][0]
    mat = scipy.io.loadmat(str(tmp_path / "cls" / "2009_000001.mat"))
    assert np.array_equal(mat["GTcls"][0]["Segmentation"][0], read_sbd_mat(tmp_path / "cls" / "2009_000001.mat"))
    with pytest.raises(ValueError, match="GTinst"):
        read_sbd_mat(tmp_path / "cls" / "2009_000001.mat", struct="GTinst")


def test_palette_is_the_voc_devkit_colour_map() -> None:
    palette = make_palette(256)
    assert palette[:4].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    assert palette[15].tolist() == [192, 128, 128]  # person
    assert palette[255].tolist() == [224, 224, 192]  # void
    assert len(VOC_CLASSES) == 21 and VOC_CLASSES[15] == "person"


# ---------------------------------------------------------------- the other zoo datasets

def _save_rgb(path: Path, rng: np.random.Generator, shape=(6, 5)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, size=shape + (3,), dtype=np.uint8)).save(path)


def test_siftflow_shifts_labels_so_unlabeled_becomes_void(tmp_path: Path) -> None:
    sub = "spatial_envelope_256x256_static_8outdoorcategories"
    rng = np.random.default_rng(0)
    (tmp_path / "test.txt").write_text("coast_a\n")
    _save_rgb(tmp_path / "Images" / sub / "coast_a.jpg", rng)
    semantic = np.array([[0, 1, 33, 5, 0]] * 6, dtype=np.int32)
    geometric = np.array([[-1, 0, 1, 2, 3]] * 6, dtype=np.int32)
    for kind, value in (("SemanticLabels", semantic), ("GeoLabels", geometric)):
        (tmp_path / kind / sub).mkdir(parents=True)
        scipy.io.savemat(str(tmp_path / kind / sub / "coast_a.mat"), {"S": value})
    dataset = SIFTFlowSegmentation(tmp_path, "test")
    assert dataset[0].label[0].tolist() == [255, 0, 32, 4, 255]
    assert dataset.load_geometric("coast_a")[0].tolist() == [255, 255, 0, 1, 2]


def test_pascal_context_maps_full_labels_to_the_59_task_by_name(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    voc, context = tmp_path / "VOC2010", tmp_path / "context"
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "ImageSets" / "Main" / "val.txt").write_text("2008_000001\n")
    _save_rgb(voc / "JPEGImages" / "2008_000001.jpg", rng, shape=(2, 3))
    (context / "trainval").mkdir(parents=True)
    (context / "labels.txt").write_text("1: accordion\n2: aeroplane\n3: air conditioner\n4: table\n"
                                        "5: bedclothes\n6: sky\n")
    (context / "59_labels.txt").write_text("1: aeroplane\n2: bedcloth\n3: diningtable\n"
                                           "4: airconditioner\n")
    full = np.array([[0, 1, 2], [3, 4, 5]], dtype=np.uint16) + 1  # 1-based full labels 1..6
    scipy.io.savemat(str(context / "trainval" / "2008_000001.mat"), {"LabelMap": full})
    label = PascalContextSegmentation(voc, context, "val")[0].label
    # accordion, aeroplane, air conditioner / table, bedclothes, sky
    assert label.tolist() == [[0, 1, 4], [3, 2, 0]]


def test_nyud_shifts_labels_and_reads_hha_and_depth(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    (tmp_path / "test.txt").write_text("5001\n")
    _save_rgb(tmp_path / "data" / "images" / "img_5001.png", rng, shape=(3, 4))
    _save_rgb(tmp_path / "data" / "hha" / "img_5001.png", rng, shape=(3, 4))
    depth = rng.integers(500, 9000, size=(3, 4)).astype(np.uint16)
    (tmp_path / "data" / "depth").mkdir()
    Image.fromarray(depth).save(tmp_path / "data" / "depth" / "img_5001.png")
    (tmp_path / "segmentation").mkdir()
    segmentation = np.array([[0, 1, 40, 7]] * 3, dtype=np.uint8)
    scipy.io.savemat(str(tmp_path / "segmentation" / "img_5001.mat"), {"segmentation": segmentation})
    dataset = NYUDSegmentation(tmp_path, "test")
    assert dataset[0].label[0].tolist() == [255, 0, 39, 6]
    hha_png = np.array(Image.open(tmp_path / "data" / "hha" / "img_5001.png"), dtype=np.float32)
    hha = dataset.load_hha("5001")
    assert hha.shape == (3, 3, 4)
    assert np.allclose(hha[0], hha_png[:, :, 0] - NYUD_MEAN_HHA[0])  # not channel-flipped
    log_depth = dataset.load_log_depth("5001")
    assert log_depth.shape == (1, 3, 4)
    assert np.allclose(log_depth[0], np.log(depth.astype(np.float64)) - NYUD_MEAN_LOG_DEPTH, atol=1e-5)
