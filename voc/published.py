"""Published PASCAL VOC scores of the FCN models, each with where it was published and on what images.

Numbers are percent, as printed in their sources. ``file`` is the original caffemodel's file name,
which a converted ``.pth`` keeps in ``source.file``, so an evaluation can find its own rows.
``image_set`` is the image list the number was measured on: only ``seg11valid`` numbers can be
checked locally (the VOC test sets' labels are private). ``None`` means "not reported".
"""
from __future__ import annotations

from dataclasses import dataclass

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


PUBLISHED: tuple[Published, ...] = (
    # CVPR 2015 models (V1-format caffemodels from the paper's model zoo gists).
    Published("FCN-32s-fixed", None, "seg11valid", 45.4, CVPR2015_TABLE2, 83.0, 59.7, 72.0),
    Published("FCN-32s", "fcn-32s-pascal.caffemodel", "seg11valid", 59.4, CVPR2015_TABLE2,
              89.1, 73.3, 81.4),
    Published("FCN-16s", "fcn-16s-pascal.caffemodel", "seg11valid", 62.4, CVPR2015_TABLE2,
              90.0, 75.7, 83.0),
    Published("FCN-8s", "fcn-8s-pascal.caffemodel", "seg11valid", 62.7, CVPR2015_TABLE2,
              90.3, 75.9, 83.2),
    Published("FCN-8s", "fcn-8s-pascal.caffemodel", "VOC2011 test", 62.7, CVPR2015_TABLE3),
    Published("FCN-8s", "fcn-8s-pascal.caffemodel", "VOC2012 test", 62.2, CVPR2015_TABLE3),
    # "Heavy" models of the reference repository (trained with the unnormalized loss, momentum 0.99).
    Published("FCN-32s heavy", "fcn32s-heavy-pascal.caffemodel", "seg11valid", 63.6, REFERENCE_README),
    Published("FCN-16s heavy", "fcn16s-heavy-pascal.caffemodel", "seg11valid", 65.0, REFERENCE_README),
    Published("FCN-8s heavy", "fcn8s-heavy-pascal.caffemodel", "seg11valid", 65.5, REFERENCE_README),
    Published("FCN-8s heavy", "fcn8s-heavy-pascal.caffemodel", "VOC2012 test", 67.2, REFERENCE_README),
    Published("FCN-8s at-once", "fcn8s-atonce-pascal.caffemodel", "seg11valid", 65.4, REFERENCE_README),
    Published("FCN-AlexNet", "fcn-alexnet-pascal.caffemodel", "seg11valid", 48.0, REFERENCE_README),
    # The same heavy caffemodels, all four metrics, as scored by an independent PyTorch port.
    Published("FCN-32s heavy", "fcn32s-heavy-pascal.caffemodel", "seg11valid", 63.63,
              PYTORCH_FCN_README, 90.49, 76.48, 83.47),
    Published("FCN-16s heavy", "fcn16s-heavy-pascal.caffemodel", "seg11valid", 65.01,
              PYTORCH_FCN_README, 91.00, 78.07, 84.27),
    Published("FCN-8s heavy", "fcn8s-heavy-pascal.caffemodel", "seg11valid", 65.51,
              PYTORCH_FCN_README, 91.23, 77.61, 84.55),
    Published("FCN-8s at-once", "fcn8s-atonce-pascal.caffemodel", "seg11valid", 65.40,
              PYTORCH_FCN_README, 91.13, 78.50, 84.44),
)


def lookup(key: str, image_set: str | None = None) -> list[Published]:
    """Rows for a caffemodel file name (any folder, ``.caffemodel`` optional) or a model name,
    optionally only those measured on ``image_set``."""
    name = key.replace("\\", "/").rsplit("/", 1)[-1]
    stem = name.removesuffix(".caffemodel")
    rows = [row for row in PUBLISHED
            if (row.file is not None and row.file.removesuffix(".caffemodel") == stem)
            or row.model.lower() == key.lower()]
    return [row for row in rows if image_set is None or row.image_set == image_set]
