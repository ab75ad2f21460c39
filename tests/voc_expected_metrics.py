"""An independent, deliberately naive computation of the paper's metrics, to check voc.metrics against.

It works on sets of pixel indices and on exact fractions, with plain Python loops: no bincount, no
confusion-matrix algebra, no numpy reductions, so a shared mistake is unlikely.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Sequence


def metrics_from_pixels(gt: Sequence[int], pred: Sequence[int], n: int) -> dict[str, object]:
    """Metrics from flat per-pixel labels (summed over a whole dataset); gt outside [0, n) is void."""
    valid = [i for i, g in enumerate(gt) if 0 <= g < n]
    per_class_acc: list[Fraction | None] = []
    per_class_iu: list[Fraction | None] = []
    for c in range(n):
        gt_set = {i for i in valid if gt[i] == c}
        pred_set = {i for i in valid if pred[i] == c}
        union = gt_set | pred_set
        per_class_acc.append(Fraction(len(gt_set & pred_set), len(gt_set)) if gt_set else None)
        per_class_iu.append(Fraction(len(gt_set & pred_set), len(union)) if union else None)
    correct = sum(1 for i in valid if gt[i] == pred[i])
    return _summarize(per_class_acc, per_class_iu, correct, len(valid),
                      [sum(1 for i in valid if gt[i] == c) for c in range(n)])


def metrics_from_hist(hist: Sequence[Sequence[int]]) -> dict[str, object]:
    """Metrics from a confusion matrix (rows ground truth), entry by entry."""
    n = len(hist)
    total = sum(hist[r][c] for r in range(n) for c in range(n))
    per_class_acc: list[Fraction | None] = []
    per_class_iu: list[Fraction | None] = []
    gt_counts = []
    for k in range(n):
        tp = hist[k][k]
        in_gt = sum(hist[k][c] for c in range(n))
        in_pred = sum(hist[r][k] for r in range(n))
        union = in_gt + in_pred - tp
        gt_counts.append(in_gt)
        per_class_acc.append(Fraction(tp, in_gt) if in_gt else None)
        per_class_iu.append(Fraction(tp, union) if union else None)
    correct = sum(hist[k][k] for k in range(n))
    return _summarize(per_class_acc, per_class_iu, correct, total, gt_counts)


def _mean(values: list[Fraction | None]) -> Fraction | None:
    defined = [v for v in values if v is not None]
    return sum(defined, Fraction(0)) / len(defined) if defined else None


def _summarize(per_class_acc: list[Fraction | None], per_class_iu: list[Fraction | None],
               correct: int, total: int, gt_counts: list[int]) -> dict[str, object]:
    fw = sum((Fraction(gt_counts[c], total) * per_class_iu[c]  # type: ignore[operator]
              for c in range(len(gt_counts)) if gt_counts[c] > 0), Fraction(0)) if total else None
    return {
        "pixel_acc": Fraction(correct, total) if total else None,
        "mean_acc": _mean(per_class_acc),
        "mean_iu": _mean(per_class_iu),
        "fw_iu": fw,
        "class_acc": per_class_acc,
        "class_iu": per_class_iu,
    }
