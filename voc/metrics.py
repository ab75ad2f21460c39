"""The FCN paper's four segmentation metrics, computed as the reference ``score.py`` computes them.

Everything starts from ONE confusion matrix summed over the whole dataset (rows: ground truth,
columns: prediction). Averaging per-image scores instead gives different, incomparable numbers.
Ground-truth labels outside ``[0, n)`` (255 marks void in PASCAL VOC) are dropped before counting.
A class that appears in neither ground truth nor prediction has an undefined (NaN) accuracy and IU
and is left out of the means by ``nanmean``; a class predicted but absent from the ground truth has
IU 0 and does count.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np


def fast_hist(gt: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    """Confusion matrix (n, n) int64 of one image or batch; rows are ``gt``, columns ``pred``.

    Pixels whose ground truth is not a class index (void 255, or negative) are dropped. A
    prediction outside ``[0, n)`` on a kept pixel is a bug in the caller, so it raises instead of
    silently growing the histogram as ``np.bincount`` would.
    """
    gt = np.asarray(gt).ravel()
    pred = np.asarray(pred).ravel()
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth has {gt.size} pixels but prediction has {pred.size}")
    keep = (gt >= 0) & (gt < n)
    gt_kept = gt[keep].astype(np.int64)
    pred_kept = pred[keep].astype(np.int64)
    if pred_kept.size and (pred_kept.min() < 0 or pred_kept.max() >= n):
        raise ValueError(f"prediction has labels outside [0, {n})")
    return np.bincount(n * gt_kept + pred_kept, minlength=n * n).reshape(n, n)


@dataclass(frozen=True)
class Scores:
    """The paper's metrics (fractions in [0, 1], not percent) plus the per-class values behind them."""

    pixel_acc: float
    mean_acc: float
    mean_iu: float
    fw_iu: float
    class_acc: np.ndarray  # (n,) per-class accuracy, NaN for classes absent from the ground truth
    class_iu: np.ndarray  # (n,) per-class IU, NaN for classes absent from ground truth and prediction

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form: NaN becomes None so that the output is strict JSON."""
        return {
            "pixel_acc": _json_float(self.pixel_acc),
            "mean_acc": _json_float(self.mean_acc),
            "mean_iu": _json_float(self.mean_iu),
            "fw_iu": _json_float(self.fw_iu),
            "class_acc": [_json_float(v) for v in self.class_acc],
            "class_iu": [_json_float(v) for v in self.class_iu],
        }


def scores(hist: np.ndarray) -> Scores:
    """Pixel accuracy, mean accuracy, mean IU and frequency-weighted IU of a confusion matrix.

    Definitions (``score.py``): pixel acc = trace / total; class acc = diag / row sums; IU =
    diag / (row + column - diag); mean acc and mean IU are nanmeans; f.w. IU sums
    ``freq * IU`` over the classes with ground-truth frequency ``freq = row / total > 0``.
    """
    hist = np.asarray(hist, dtype=np.float64)
    if hist.ndim != 2 or hist.shape[0] != hist.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {hist.shape}")
    diag = np.diag(hist)
    gt_count = hist.sum(axis=1)
    pred_count = hist.sum(axis=0)
    total = hist.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        pixel_acc = diag.sum() / total if total else float("nan")
        class_acc = diag / gt_count
        class_iu = diag / (gt_count + pred_count - diag)
        freq = gt_count / total if total else np.zeros_like(gt_count)
    present = freq > 0
    return Scores(
        pixel_acc=float(pixel_acc),
        mean_acc=_nanmean(class_acc),
        mean_iu=_nanmean(class_iu),
        fw_iu=float((freq[present] * class_iu[present]).sum()) if total else float("nan"),
        class_acc=class_acc,
        class_iu=class_iu,
    )


def _nanmean(values: np.ndarray) -> float:
    """``np.nanmean`` that returns NaN quietly when every value is NaN (an empty dataset)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(values))


def _json_float(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
