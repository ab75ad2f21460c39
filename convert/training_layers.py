"""The layers a Caffe net uses only while training: SoftmaxWithLoss, Accuracy, and Dropout's
train-time mask, each computing what Caffe's layer computes, forward and backward.

- SoftmaxWithLoss (``softmax_loss_layer.cpp``): per position -log(max(p_label, FLT_MIN)), ignored
  labels skipped, the sum accumulated in float32 in Caffe's order (outer index, then inner), divided
  by the normalizer of the layer's mode. Its gradient is Caffe's, (p - onehot) * loss_weight /
  normalizer, even where the FLT_MIN clamp would stop autograd's.
- Accuracy (``accuracy_layer.cpp``): the share of non-ignored positions whose true class is among
  the top_k scores (ties count against), and optionally the per-class accuracies.
- Dropout (``dropout_layer.cpp``): in training mode each element is kept with probability
  1 - ratio and scaled by 1 / (1 - ratio) (Caffe's float scale); in eval mode it passes through.
  The mask comes from torch's global RNG, which the trainer seeds and saves for exact resume.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from convert.errors import CaffeFormatError
from convert.net import CaffeNet, Layer

FLT_MIN = float(np.finfo(np.float32).tiny)
NORMALIZATIONS = {0: "FULL", 1: "VALID", 2: "BATCH_SIZE", 3: "NONE"}


def _table() -> dict:
    return {
        "SoftmaxWithLoss": build_softmax_with_loss,
        "Accuracy": build_accuracy,
        "Dropout": build_dropout,
    }


# Layer types whose first top is a loss (weight 1 unless the layer says otherwise), as Caffe's
# LossLayer subclasses set it.
LOSS_LAYERS = frozenset({
    "SoftmaxWithLoss", "EuclideanLoss", "SigmoidCrossEntropyLoss", "HingeLoss", "InfogainLoss",
    "MultinomialLogisticLoss", "ContrastiveLoss",
})


def loss_weights(layer: Layer) -> list[float]:
    """The loss weight of each top: given in the layer, else 1 for a loss layer's first top, 0 else."""
    if len(layer.param.loss_weight):
        return [float(w) for w in layer.param.loss_weight]
    default = 1.0 if layer.type in LOSS_LAYERS else 0.0
    return [default if i == 0 else 0.0 for i in range(len(layer.tops))]


def normalization_mode(loss_param) -> str:
    """Caffe's rule: the legacy ``normalize`` bool (true VALID, false BATCH_SIZE) applies only when
    ``normalization`` is not set; the default is VALID."""
    if not loss_param.HasField("normalization") and loss_param.HasField("normalize"):
        return "VALID" if loss_param.normalize else "BATCH_SIZE"
    return NORMALIZATIONS[loss_param.normalization]


def normalizer(mode: str, outer: int, inner: int, valid: int) -> float:
    """Caffe's get_normalizer (at least 1), as the float32 it divides by."""
    value = {"FULL": outer * inner, "VALID": valid, "BATCH_SIZE": outer, "NONE": 1}[mode]
    return float(np.float32(max(1.0, float(value))))


def _flat_labels(labels: Tensor, outer: int, inner: int) -> Tensor:
    if labels.numel() != outer * inner:
        raise ValueError(f"label blob has {labels.numel()} values, the scores need {outer * inner}")
    return labels.reshape(outer, inner).to(torch.int64)  # Caffe: static_cast<int>(label)


def _check_range(labels: Tensor, valid: Tensor, classes: int) -> None:
    bad = valid & ((labels < 0) | (labels >= classes))
    if bool(bad.any()):
        raise ValueError(f"label {int(labels[bad][0])} is outside [0, {classes}) and not ignore_label")


class _SoftmaxLoss(torch.autograd.Function):
    """Forward: Caffe's loss value; backward: Caffe's gradient (see module docstring)."""

    @staticmethod
    def forward(ctx, scores: Tensor, labels: Tensor, axis: int, ignore: int | None, mode: str) -> Tensor:
        outer = math.prod(scores.shape[:axis])
        classes = scores.shape[axis]
        inner = math.prod(scores.shape[axis + 1:])
        prob = torch.softmax(scores, dim=axis).reshape(outer, classes, inner)
        flat = _flat_labels(labels, outer, inner)
        valid = torch.ones_like(flat, dtype=torch.bool) if ignore is None else flat != ignore
        _check_range(flat, valid, classes)
        safe = torch.where(valid, flat, torch.zeros_like(flat))
        picked = prob.gather(1, safe.unsqueeze(1)).squeeze(1)  # (outer, inner)
        terms = -torch.log(torch.clamp(picked, min=FLT_MIN))
        # Caffe adds the terms one by one into a float: a sequential float32 sum in (outer, inner)
        # order, which drifts from the exact sum (by 0.2% over 250,000 pixels). numpy's
        # add.accumulate is such a sum; torch's cumsum is not (it accumulates in double).
        ordered = terms[valid].detach().to("cpu", torch.float32).numpy()
        total = torch.from_numpy(np.add.accumulate(ordered)[-1:]).reshape(()) if ordered.size else \
            torch.zeros((), dtype=torch.float32)
        norm = normalizer(mode, outer, inner, int(valid.sum()))
        ctx.save_for_backward(prob, safe, valid)
        ctx.norm = norm
        ctx.shape = scores.shape
        return (total / np.float32(norm)).to(scores.device)

    @staticmethod
    def backward(ctx, grad: Tensor):
        prob, safe, valid = ctx.saved_tensors
        diff = prob.clone()
        diff.scatter_add_(1, safe.unsqueeze(1), -torch.ones_like(safe, dtype=diff.dtype).unsqueeze(1))
        diff = diff * valid.unsqueeze(1)
        scale = grad.to(torch.float32) / np.float32(ctx.norm)  # Caffe: top diff / normalizer, in float
        return (diff * scale).reshape(ctx.shape), None, None, None, None


class SoftmaxWithLoss(nn.Module):
    """Multinomial logistic loss of the softmax of ``scores`` along ``axis`` (see module docstring)."""

    def __init__(self, axis: int, ignore_label: int | None, normalization: str) -> None:
        super().__init__()
        self.axis, self.ignore_label, self.normalization = axis, ignore_label, normalization

    def forward(self, scores: Tensor, labels: Tensor) -> Tensor:
        axis = self.axis if self.axis >= 0 else self.axis + scores.dim()
        return _SoftmaxLoss.apply(scores, labels.detach(), axis, self.ignore_label, self.normalization)


def build_softmax_with_loss(layer: Layer, net: CaffeNet) -> nn.Module:
    if len(layer.bottoms) != 2:
        raise CaffeFormatError("SoftmaxWithLoss needs two bottoms (scores, labels)", layer=layer.name)
    if len(layer.tops) != 1:
        raise CaffeFormatError("SoftmaxWithLoss with a second (probability) top is not supported",
                               layer=layer.name)
    p = layer.param.loss_param
    ignore = p.ignore_label if p.HasField("ignore_label") else None
    return SoftmaxWithLoss(layer.param.softmax_param.axis, ignore, normalization_mode(p))


class Accuracy(nn.Module):
    """Top-k accuracy over non-ignored positions; with two tops also each class's accuracy."""

    def __init__(self, top_k: int, axis: int, ignore_label: int | None, per_class: bool) -> None:
        super().__init__()
        self.top_k, self.axis, self.ignore_label, self.per_class = top_k, axis, ignore_label, per_class
        self.multi_output = per_class

    @torch.no_grad()
    def forward(self, scores: Tensor, labels: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        axis = self.axis if self.axis >= 0 else self.axis + scores.dim()
        outer = math.prod(scores.shape[:axis])
        classes = scores.shape[axis]
        inner = math.prod(scores.shape[axis + 1:])
        flat = _flat_labels(labels, outer, inner)
        values = scores.reshape(outer, classes, inner)
        valid = torch.ones_like(flat, dtype=torch.bool) if self.ignore_label is None else flat != self.ignore_label
        _check_range(flat, valid, classes)
        safe = torch.where(valid, flat, torch.zeros_like(flat))
        true_score = values.gather(1, safe.unsqueeze(1))
        # Caffe counts the classes scoring >= the true class (the true class included): correct
        # when fewer than top_k others do.
        better = (values >= true_score).sum(1) - 1
        correct = (better < self.top_k) & valid
        count = int(valid.sum())
        accuracy = torch.tensor(float(correct.sum()) / count if count else 0.0, dtype=scores.dtype,
                                device=scores.device)
        if not self.per_class:
            return accuracy
        seen = torch.bincount(safe[valid], minlength=classes).to(scores.dtype)
        hits = torch.bincount(safe[correct], minlength=classes).to(scores.dtype)
        per_class = torch.where(seen > 0, hits / seen.clamp(min=1), torch.zeros_like(seen))
        return accuracy, per_class


def build_accuracy(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.accuracy_param
    if len(layer.tops) not in (1, 2):
        raise CaffeFormatError("Accuracy has one or two tops", layer=layer.name)
    ignore = p.ignore_label if p.HasField("ignore_label") else None
    return Accuracy(p.top_k, p.axis, ignore, per_class=len(layer.tops) == 2)


def dropout_scale(ratio: float) -> float:
    """Caffe's float32 ``1 / (1 - ratio)`` (0 for a ratio of 1)."""
    ratio = float(np.float32(ratio))
    return float(np.float32(1.0 / (1.0 - ratio))) if ratio < 1 else 0.0


def train_dropout(x: Tensor, ratio: float) -> Tensor:
    """Caffe's train-time dropout, ``x * mask * scale`` (so a dropped NaN stays NaN, as in Caffe),
    each element kept where a uniform draw from torch's global RNG is below ``1 - ratio``. The mask
    times the scale is one tensor: half the passes of ``torch.where`` or ``bernoulli_``."""
    keep = torch.rand(x.shape, device=x.device) < 1.0 - float(np.float32(ratio))
    return x * keep.to(x.dtype).mul_(dropout_scale(ratio))


class Dropout(nn.Module):
    """Identity in eval mode; Caffe's inverted dropout in training mode (see module docstring)."""

    def __init__(self, ratio: float) -> None:
        super().__init__()
        self.ratio = float(np.float32(ratio))
        self.scale = dropout_scale(self.ratio)  # what a kept element is multiplied by

    def forward(self, x: Tensor) -> Tensor:
        return train_dropout(x, self.ratio) if self.training else x


def build_dropout(layer: Layer, net: CaffeNet) -> nn.Module:
    ratio = layer.param.dropout_param.dropout_ratio
    if not 0 <= ratio < 1:
        raise CaffeFormatError(f"dropout_ratio must be in [0, 1), got {ratio}", layer=layer.name)
    return Dropout(ratio)


TRAINING_LAYER_BUILDERS = _table()
