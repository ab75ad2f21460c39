"""The registry of released FCN caffemodels: one entry per file, everything that belongs to the weights.

As torchvision's ``Weights``: an entry carries the facts of the weights rather than of the
architecture (FCN-8s with 21 classes is VOC, with 60 PASCAL-Context): the original file's name and
download address, its sha256 where known, the fcn_ref architecture, the classes, the preprocessing
(one mean per input, and its channel order), and the published metrics with their source and image
set. Dataset facts (class names, means) are ``voc``'s data; the entries refer to them. A converted
file keeps its source file name, so ``weights_for(model)`` finds the entry and ``infer`` subtracts
the right mean, and ``python -m fcn_ref.evaluate`` prints the right published rows.

sha256: the reference repository publishes none, and no original caffemodel was hashed here, so
every entry says ``None`` (unknown); ``python -m convert`` records the hash of the file it read.
Metrics are percent, as printed in their sources; ``None`` means "not reported". Only
``seg11valid`` numbers can be checked locally (the VOC test sets' labels are private).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voc.datasets import VOC_CLASSES
from voc.means import CONTEXT_MEAN, NYUD_COLOR_MEAN, NYUD_HHA_MEAN, SIFTFLOW_MEAN, VOC_MEAN

BASE_URL = "http://dl.caffe.berkeleyvision.org/"
CVPR2015_TABLE2 = ("Long, Shelhamer, Darrell, 'Fully Convolutional Networks for Semantic "
                   "Segmentation', CVPR 2015 (arXiv:1411.4038v2), Table 2")
CVPR2015_TABLE3 = CVPR2015_TABLE2.replace("Table 2", "Table 3")
REFERENCE_README = "shelhamer/fcn.berkeleyvision.org README.md (@1305c73), model list"
PYTORCH_FCN_README = ("wkentaro/pytorch-fcn README.md, 'Accuracy' table (pytorch-fcn 1.7.0), rows "
                      "'Original': the released caffemodels' weights in pytorch-fcn's own PyTorch "
                      "port, scored on seg11valid by its examples/voc/evaluate.py")


@dataclass(frozen=True)
class Published:
    """One published result: metrics in percent, None where the source gives none."""

    model: str
    file: str | None  # original caffemodel file name; None when no weights were released
    image_set: str  # "seg11valid", "VOC2011 test", "VOC2012 test"
    mean_iu: float
    source: str
    pixel_acc: float | None = None
    mean_acc: float | None = None
    fw_iu: float | None = None


@dataclass(frozen=True)
class ZooWeights:
    """One released caffemodel and what it needs and scored."""

    file: str
    architecture: str  # fcn_ref.ARCHITECTURES name
    num_classes: int
    dataset: str
    means: tuple[np.ndarray, ...]  # one mean per image input, in input order (voc.means)
    channel_order: tuple[str, ...] = ("BGR",)  # per input: "BGR" (RGB pictures flipped) or "HHA"
    url: str | None = None  # None: the reference repository gives no download address
    sha256: str | None = None  # None: unknown (see the module docstring)
    classes: tuple[str, ...] | None = None  # class names where voc has them
    published: tuple[Published, ...] = ()


def _metrics(model: str, file: str, *rows: tuple) -> tuple[Published, ...]:
    """Published rows of one file: (image_set, mean_iu, source[, pixel_acc, mean_acc, fw_iu])."""
    return tuple(Published(model, file, image_set, mean_iu, source, *rest)
                 for image_set, mean_iu, source, *rest in rows)


def _voc(file: str, arch: str, model: str, *rows: tuple, url: bool = True) -> ZooWeights:
    return ZooWeights(file, arch, 21, "PASCAL VOC", (VOC_MEAN,), url=BASE_URL + file if url else None,
                      classes=VOC_CLASSES, published=_metrics(model, file, *rows))


def _heavy(file: str, arch: str, k: int, dataset: str, *means: np.ndarray,
           order: tuple[str, ...] = ("BGR",)) -> ZooWeights:
    return ZooWeights(file, arch, k, dataset, means, order, BASE_URL + file)


ZOO: tuple[ZooWeights, ...] = (
    # "Heavy" models of the reference repository (unnormalized loss, momentum 0.99); the second
    # row of each is the same caffemodel scored by an independent PyTorch port.
    _voc("fcn32s-heavy-pascal.caffemodel", "fcn32s", "FCN-32s heavy", ("seg11valid", 63.6, REFERENCE_README),
         ("seg11valid", 63.63, PYTORCH_FCN_README, 90.49, 76.48, 83.47)),
    _voc("fcn16s-heavy-pascal.caffemodel", "fcn16s", "FCN-16s heavy", ("seg11valid", 65.0, REFERENCE_README),
         ("seg11valid", 65.01, PYTORCH_FCN_README, 91.00, 78.07, 84.27)),
    _voc("fcn8s-heavy-pascal.caffemodel", "fcn8s", "FCN-8s heavy", ("seg11valid", 65.5, REFERENCE_README),
         ("VOC2012 test", 67.2, REFERENCE_README),
         ("seg11valid", 65.51, PYTORCH_FCN_README, 91.23, 77.61, 84.55)),
    _voc("fcn8s-atonce-pascal.caffemodel", "fcn8s-atonce", "FCN-8s at-once",
         ("seg11valid", 65.4, REFERENCE_README), ("seg11valid", 65.40, PYTORCH_FCN_README, 91.13, 78.50, 84.44)),
    _voc("fcn-alexnet-pascal.caffemodel", "fcn-alexnet", "FCN-AlexNet", ("seg11valid", 48.0, REFERENCE_README)),
    _heavy("siftflow-fcn32s-heavy.caffemodel", "siftflow-fcn32s", 33, "SIFT Flow", SIFTFLOW_MEAN),
    _heavy("siftflow-fcn16s-heavy.caffemodel", "siftflow-fcn16s", 33, "SIFT Flow", SIFTFLOW_MEAN),
    _heavy("siftflow-fcn8s-heavy.caffemodel", "siftflow-fcn8s", 33, "SIFT Flow", SIFTFLOW_MEAN),
    _heavy("pascalcontext-fcn32s-heavy.caffemodel", "fcn32s", 60, "PASCAL-Context", CONTEXT_MEAN),
    _heavy("pascalcontext-fcn16s-heavy.caffemodel", "fcn16s", 60, "PASCAL-Context", CONTEXT_MEAN),
    _heavy("pascalcontext-fcn8s-heavy.caffemodel", "fcn8s", 60, "PASCAL-Context", CONTEXT_MEAN),
    _heavy("nyud-fcn32s-color-heavy.caffemodel", "fcn32s", 40, "NYUDv2", NYUD_COLOR_MEAN),
    _heavy("nyud-fcn32s-hha-heavy.caffemodel", "fcn32s", 40, "NYUDv2 (HHA input)", NYUD_HHA_MEAN, order=("HHA",)),
    _heavy("nyud-fcn32s-color-hha-heavy.caffemodel", "nyud-fcn32s-color-hha", 40, "NYUDv2",
           NYUD_COLOR_MEAN, NYUD_HHA_MEAN, order=("BGR", "HHA")),
    # The CVPR 2015 release: V1 files from the paper's model-zoo gists (no download address here).
    _voc("fcn-32s-pascal.caffemodel", "cvpr-fcn32s", "FCN-32s",
         ("seg11valid", 59.4, CVPR2015_TABLE2, 89.1, 73.3, 81.4), url=False),
    _voc("fcn-16s-pascal.caffemodel", "cvpr-fcn16s", "FCN-16s",
         ("seg11valid", 62.4, CVPR2015_TABLE2, 90.0, 75.7, 83.0), url=False),
    _voc("fcn-8s-pascal.caffemodel", "cvpr-fcn8s", "FCN-8s",
         ("seg11valid", 62.7, CVPR2015_TABLE2, 90.3, 75.9, 83.2), ("VOC2011 test", 62.7, CVPR2015_TABLE3),
         ("VOC2012 test", 62.2, CVPR2015_TABLE3), url=False),
)

# Published results of models whose weights were never released.
UNRELEASED: tuple[Published, ...] = (
    Published("FCN-32s-fixed", None, "seg11valid", 45.4, CVPR2015_TABLE2, 83.0, 59.7, 72.0),
)

PUBLISHED: tuple[Published, ...] = UNRELEASED + tuple(row for entry in ZOO for row in entry.published)


def weights_named(file: str | None) -> ZooWeights | None:
    """The entry for a caffemodel file name (any folder), or None for files not in the zoo."""
    if not file:
        return None
    name = file.replace("\\", "/").rsplit("/", 1)[-1]
    return next((w for w in ZOO if w.file == name), None)


def weights_for(model: object) -> ZooWeights | None:
    """The entry for a loaded model, from the source file its converted file records."""
    source = (getattr(model, "meta", None) or {}).get("source") or {}
    return weights_named(source.get("file"))


def lookup(key: str, image_set: str | None = None) -> list[Published]:
    """Published rows for a caffemodel file name (any folder, ``.caffemodel`` optional) or a model
    name, optionally only those measured on ``image_set``."""
    name = key.replace("\\", "/").rsplit("/", 1)[-1]
    stem = name.removesuffix(".caffemodel")
    rows = [row for row in PUBLISHED
            if (row.file is not None and row.file.removesuffix(".caffemodel") == stem)
            or row.model.lower() == key.lower()]
    return [row for row in rows if image_set is None or row.image_set == image_set]
