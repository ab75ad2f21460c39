"""The released FCN caffemodels and what each needs: architecture, class count, input mean.

Like torchvision's weight enums, an entry carries the facts that belong to the weights rather than
to the architecture: FCN-8s with 21 classes is VOC (VOC mean), with 60 it is PASCAL-Context (its
own mean). A converted file keeps its source file name, so ``weights_for(model)`` finds the entry
and ``infer`` subtracts the right mean. Published scores live in ``voc.published`` (by file name).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fcn_ref.transforms import CONTEXT_MEAN, NYUD_COLOR_MEAN, NYUD_HHA_MEAN, SIFTFLOW_MEAN, VOC_MEAN

BASE_URL = "http://dl.caffe.berkeleyvision.org/"


@dataclass(frozen=True)
class ZooWeights:
    """One released caffemodel: its file, the fcn_ref architecture, the dataset and input means."""

    file: str
    architecture: str
    num_classes: int
    dataset: str
    means: tuple[np.ndarray, ...]  # one BGR (or HHA) mean per image input, in input order
    url: str | None = None  # None: the reference repository gives no download address


def _heavy(file: str, arch: str, k: int, dataset: str, *means: np.ndarray) -> ZooWeights:
    return ZooWeights(file, arch, k, dataset, means, BASE_URL + file)


ZOO: tuple[ZooWeights, ...] = (
    _heavy("fcn32s-heavy-pascal.caffemodel", "fcn32s", 21, "PASCAL VOC", VOC_MEAN),
    _heavy("fcn16s-heavy-pascal.caffemodel", "fcn16s", 21, "PASCAL VOC", VOC_MEAN),
    _heavy("fcn8s-heavy-pascal.caffemodel", "fcn8s", 21, "PASCAL VOC", VOC_MEAN),
    _heavy("fcn8s-atonce-pascal.caffemodel", "fcn8s-atonce", 21, "PASCAL VOC", VOC_MEAN),
    _heavy("fcn-alexnet-pascal.caffemodel", "fcn-alexnet", 21, "PASCAL VOC", VOC_MEAN),
    _heavy("siftflow-fcn32s-heavy.caffemodel", "siftflow-fcn32s", 33, "SIFT Flow", SIFTFLOW_MEAN),
    _heavy("siftflow-fcn16s-heavy.caffemodel", "siftflow-fcn16s", 33, "SIFT Flow", SIFTFLOW_MEAN),
    _heavy("siftflow-fcn8s-heavy.caffemodel", "siftflow-fcn8s", 33, "SIFT Flow", SIFTFLOW_MEAN),
    _heavy("pascalcontext-fcn32s-heavy.caffemodel", "fcn32s", 60, "PASCAL-Context", CONTEXT_MEAN),
    _heavy("pascalcontext-fcn16s-heavy.caffemodel", "fcn16s", 60, "PASCAL-Context", CONTEXT_MEAN),
    _heavy("pascalcontext-fcn8s-heavy.caffemodel", "fcn8s", 60, "PASCAL-Context", CONTEXT_MEAN),
    _heavy("nyud-fcn32s-color-heavy.caffemodel", "fcn32s", 40, "NYUDv2", NYUD_COLOR_MEAN),
    _heavy("nyud-fcn32s-hha-heavy.caffemodel", "fcn32s", 40, "NYUDv2 (HHA input)", NYUD_HHA_MEAN),
    _heavy("nyud-fcn32s-color-hha-heavy.caffemodel", "nyud-fcn32s-color-hha", 40, "NYUDv2",
           NYUD_COLOR_MEAN, NYUD_HHA_MEAN),
    # The CVPR 2015 release: V1 files from the paper's model-zoo gists.
    ZooWeights("fcn-32s-pascal.caffemodel", "cvpr-fcn32s", 21, "PASCAL VOC", (VOC_MEAN,)),
    ZooWeights("fcn-16s-pascal.caffemodel", "cvpr-fcn16s", 21, "PASCAL VOC", (VOC_MEAN,)),
    ZooWeights("fcn-8s-pascal.caffemodel", "cvpr-fcn8s", 21, "PASCAL VOC", (VOC_MEAN,)),
)


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
