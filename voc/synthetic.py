"""Tiny synthetic datasets in the real VOC and SBD file layouts, for tests, demos and benchmarks.

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
                    num_classes: int = 21, seed: int = 0, ids: list[str] | None = None) -> list[str]:
    """Write ``JPEGImages/<id>.jpg``, ``SegmentationClass/<id>.png`` and
    ``ImageSets/Segmentation/<split>.txt`` under ``root``; return the ids in split order.

    ``sizes`` are (width, height), cycled over the images, so runs of equal sizes and size changes
    both occur (which batching has to handle). ``ids`` default to ``synth_000000``, ...
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    ids = ids if ids is not None else [f"synth_{i:06d}" for i in range(num_images)]
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i, image_id in enumerate(ids):
        width, height = sizes[i % len(sizes)]
        label = random_label(rng, height, width, num_classes)
        paint(rng, label).save(root / "JPEGImages" / f"{image_id}.jpg", quality=95)
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
