"""Tiny synthetic datasets in the real file layouts (VOC, SBD, SIFT Flow, NYUDv2, PASCAL-Context),
for tests, demos and benchmarks.

The label maps look like VOC's: background with a few rectangular objects, each outlined by a band
of void (255) pixels. Every image is its label map painted in the class colours plus noise, so a
model can learn the task in seconds and a hand-built model can solve it exactly. Everything is
seeded, so a folder is the same on every run.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from voc.datasets import VOID
from voc.other_datasets import SIFTFLOW_SUBDIR
from voc.palette import VOC_PALETTE, save_label_png


def random_label(rng: np.random.Generator, height: int, width: int, num_classes: int = 21,
                 objects: int = 3, void_width: int = 2) -> np.ndarray:
    """Background (0) with ``objects`` rectangles of random classes, each with a void outline."""
    label = np.zeros((height, width), dtype=np.uint8)
    for _ in range(objects):
        h = int(rng.integers(max(2, height // 4), max(3, height // 2) + 1))
        w = int(rng.integers(max(2, width // 4), max(3, width // 2) + 1))
        top = int(rng.integers(0, height - h + 1))
        left = int(rng.integers(0, width - w + 1))
        outer = label[max(0, top - void_width):top + h + void_width,
                      max(0, left - void_width):left + w + void_width]
        outer[...] = VOID
        label[top:top + h, left:left + w] = rng.integers(1, num_classes)
    return label


def paint(rng: np.random.Generator, label: np.ndarray, noise: float = 8.0) -> Image.Image:
    """An RGB image of ``label`` in the VOC colours (void grey) with Gaussian noise."""
    colours = VOC_PALETTE.astype(np.float64).copy()
    colours[VOID] = (128, 128, 128)
    pixels = colours[label] + rng.normal(0.0, noise, size=label.shape + (3,))
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8), mode="RGB")


def make_voc_folder(root: str | Path, num_images: int = 4, split: str = "val",
                    sizes: tuple[tuple[int, int], ...] = ((40, 30), (40, 30), (30, 44)),
                    num_classes: int = 21, seed: int = 0, ids: list[str] | None = None,
                    objects: int = 3, noise: float = 8.0) -> list[str]:
    """Write ``JPEGImages/<id>.jpg``, ``SegmentationClass/<id>.png`` and
    ``ImageSets/Segmentation/<split>.txt`` under ``root``; return the ids in split order.

    ``sizes`` are (width, height), cycled over the images, so runs of equal sizes and size changes
    both occur (which batching has to handle). ``ids`` default to ``synth_000000``, ...
    ``objects`` rectangles per image and the pixel ``noise`` go to ``random_label`` and ``paint``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    ids = ids if ids is not None else [f"synth_{i:06d}" for i in range(num_images)]
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i, image_id in enumerate(ids):
        width, height = sizes[i % len(sizes)]
        label = random_label(rng, height, width, num_classes, objects=objects)
        paint(rng, label, noise=noise).save(root / "JPEGImages" / f"{image_id}.jpg", quality=95)
        save_label_png(label, root / "SegmentationClass" / f"{image_id}.png")
    (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return ids


def write_sbd_mat(path: str | Path, label: np.ndarray, struct: str = "GTcls") -> None:
    """An SBD-style ``.mat``: a struct with ``Segmentation``, ``Boundaries``, ``CategoriesPresent``."""
    classes = np.unique(label[(label > 0) & (label != VOID)]).astype(np.uint8)
    boundaries = np.empty((len(classes), 1), dtype=object)  # one (empty) edge map per class
    for i in range(len(classes)):
        boundaries[i, 0] = np.zeros(label.shape, dtype=np.uint8)
    scipy.io.savemat(str(path), {struct: {
        "Segmentation": label.astype(np.uint8),
        "Boundaries": boundaries,
        "CategoriesPresent": classes.reshape(-1, 1),
    }})


def make_sbd_folder(root: str | Path, splits: dict[str, list[str]], size: tuple[int, int] = (36, 28),
                    num_classes: int = 21, seed: int = 0) -> dict[str, np.ndarray]:
    """Write SBD's ``img/<id>.jpg``, ``cls/<id>.mat`` and ``<split>.txt`` lists under ``root``.

    SBD labels have no void, so the outlines are background here. Returns each id's label map.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    (root / "cls").mkdir(parents=True, exist_ok=True)
    labels: dict[str, np.ndarray] = {}
    for split, ids in splits.items():
        for image_id in ids:
            if image_id not in labels:
                label = random_label(rng, size[1], size[0], num_classes)
                label[label == VOID] = 0
                paint(rng, label).save(root / "img" / f"{image_id}.jpg", quality=95)
                write_sbd_mat(root / "cls" / f"{image_id}.mat", label)
                labels[image_id] = label
        (root / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return labels


def _write_split(path: Path, ids: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i}\n" for i in ids))


def _mkdirs(*paths: Path) -> None:
    for path in paths:
        path.mkdir(parents=True, exist_ok=True)


def make_siftflow_folder(root: str | Path, splits: dict[str, list[str]],
                         sizes: tuple[tuple[int, int], ...] = ((17, 13), (14, 19)), seed: int = 0) -> None:
    """SIFT Flow's layout: ``<split>.txt``, ``Images/<subdir>/<id>.jpg`` and ``S`` in
    ``{Semantic,Geo}Labels/<subdir>/<id>.mat`` as MATLAB doubles: semantic 0 (unlabeled) .. 33,
    geometric -1 and 0 (both unlabeled) .. 3. ``sizes`` are (width, height), cycled."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    folders = [root / kind / SIFTFLOW_SUBDIR for kind in ("Images", "SemanticLabels", "GeoLabels")]
    _mkdirs(*folders)
    ids = list(dict.fromkeys(i for split in splits.values() for i in split))
    for n, image_id in enumerate(ids):
        width, height = sizes[n % len(sizes)]
        semantic = random_label(rng, height, width, num_classes=34)
        semantic[semantic == VOID] = 0
        paint(rng, semantic).save(folders[0] / f"{image_id}.jpg", quality=95)
        geometric = rng.integers(-1, 4, size=(height, width))
        scipy.io.savemat(str(folders[1] / f"{image_id}.mat"), {"S": semantic.astype(np.float64)})
        scipy.io.savemat(str(folders[2] / f"{image_id}.mat"), {"S": geometric.astype(np.float64)})
    for split, split_ids in splits.items():
        _write_split(root / f"{split}.txt", split_ids)


def make_nyud_folder(root: str | Path, splits: dict[str, list[str]],
                     sizes: tuple[tuple[int, int], ...] = ((15, 11), (12, 16)), seed: int = 0) -> None:
    """NYUDv2 as packaged for FCN: ``<split>.txt``, ``data/{images,hha}/img_<id>.png`` (RGB),
    ``data/depth/img_<id>.png`` (16-bit, millimetres, no zeros) and ``segmentation/img_<id>.mat``
    (``segmentation``: 0 = void, 1..40)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    images, hha, depth, segmentation = (root / "data" / "images", root / "data" / "hha", root / "data" / "depth",
                                        root / "segmentation")
    _mkdirs(images, hha, depth, segmentation)
    ids = list(dict.fromkeys(i for split in splits.values() for i in split))
    for n, image_id in enumerate(ids):
        width, height = sizes[n % len(sizes)]
        label = random_label(rng, height, width, num_classes=41)
        label[label == VOID] = 0
        paint(rng, label).save(images / f"img_{image_id}.png")
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), mode="RGB").save(
            hha / f"img_{image_id}.png")
        Image.fromarray(rng.integers(400, 10000, (height, width)).astype(np.uint16)).save(depth / f"img_{image_id}.png")
        scipy.io.savemat(str(segmentation / f"img_{image_id}.mat"), {"segmentation": label})
    for split, split_ids in splits.items():
        _write_split(root / f"{split}.txt", split_ids)


# A few of PASCAL-Context's full labels, and a task list that spells three of them differently,
# as the real 59_labels.txt does ("diningtable", "bedcloth", "clothes").
CONTEXT_FULL_LABELS = ("accordion", "aeroplane", "air conditioner", "bedclothes", "bird", "cloth", "grass",
                       "sky", "table", "water")
CONTEXT_TASK_LABELS = ("aeroplane", "bedcloth", "bird", "clothes", "diningtable", "sky", "water")


def make_context_folder(voc_dir: str | Path, context_dir: str | Path, splits: dict[str, list[str]],
                        sizes: tuple[tuple[int, int], ...] = ((16, 12), (13, 18)), seed: int = 0,
                        full_labels: tuple[str, ...] = CONTEXT_FULL_LABELS,
                        task_labels: tuple[str, ...] = CONTEXT_TASK_LABELS) -> None:
    """PASCAL-Context as its reference layer reads it: ``<voc_dir>/VOC2010/JPEGImages/<id>.jpg`` and
    ``ImageSets/Main/<split>.txt``; ``<context_dir>/labels.txt`` and ``59_labels.txt`` (``n: name``
    lines) and ``trainval/<id>.mat`` (``LabelMap``, uint16, 1-based full labels, 0 unlabeled)."""
    voc, context = Path(voc_dir) / "VOC2010", Path(context_dir)
    rng = np.random.default_rng(seed)
    _mkdirs(voc / "JPEGImages", context / "trainval")
    (context / "labels.txt").write_text("".join(f"{n}: {name}\n" for n, name in enumerate(full_labels, 1)))
    (context / "59_labels.txt").write_text("".join(f"{n}: {name}\n" for n, name in enumerate(task_labels, 1)))
    ids = list(dict.fromkeys(i for split in splits.values() for i in split))
    for n, image_id in enumerate(ids):
        width, height = sizes[n % len(sizes)]
        label = random_label(rng, height, width, num_classes=len(full_labels) + 1, objects=6)
        label[label == VOID] = 0
        paint(rng, label).save(voc / "JPEGImages" / f"{image_id}.jpg", quality=95)
        scipy.io.savemat(str(context / "trainval" / f"{image_id}.mat"), {"LabelMap": label.astype(np.uint16)})
    for split, split_ids in splits.items():
        _write_split(voc / "ImageSets" / "Main" / f"{split}.txt", split_ids)
