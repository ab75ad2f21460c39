"""Caffe's Scale, Bias and Eltwise: products and sums of blobs, with Caffe's broadcasting.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn


def _broadcast(param: Tensor, x: Tensor, axis: int) -> Tensor:
    """View ``param`` so it lines up with ``x`` from ``axis`` on (Caffe's Scale/Bias broadcasting).
    A one-element operand (Caffe's scalar, ``num_axes: 0``) applies everywhere."""
    if param.numel() == 1:
        return param.reshape(())
    axis = axis if axis >= 0 else axis + x.dim()
    trailing = x.dim() - axis - param.dim()
    if trailing < 0 or tuple(x.shape[axis:axis + param.dim()]) != tuple(param.shape):
        raise ValueError(f"cannot apply a {tuple(param.shape)} operand to {tuple(x.shape)} at axis {axis}")
    return param.reshape(param.shape + (1,) * trailing)


class Scale(nn.Module):
    """x * scale (+ bias), scale from the ``weight`` blob or the second bottom, aligned at ``axis``.

    Blobs are named by ``blob_names`` like everywhere else (with a second bottom the lone blob is
    the ``bias``); ``bias_blob`` records which name holds the bias, None without one.
    """

    def __init__(self, axis: int, bias_blob: str | None) -> None:
        super().__init__()
        self.axis = axis
        self.bias_blob = bias_blob

    def forward(self, x: Tensor, scale: Tensor | None = None) -> Tensor:
        if scale is None:
            scale = self.weight
        y = x * _broadcast(scale, x, self.axis)
        if self.bias_blob is None:
            return y
        return y + _broadcast(self._parameters[self.bias_blob], x, self.axis)


class Bias(nn.Module):
    """x + bias, bias from the ``bias`` blob or the second bottom, aligned at ``axis``."""

    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, x: Tensor, bias: Tensor | None = None) -> Tensor:
        return x + _broadcast(self.bias if bias is None else bias, x, self.axis)


class Eltwise(nn.Module):
    """SUM (with coefficients), PROD or MAX of all bottoms."""

    def __init__(self, operation: int, coeffs: Sequence[float]) -> None:
        super().__init__()
        self.operation = operation
        self.coeffs = tuple(coeffs)

    def forward(self, *xs: Tensor) -> Tensor:
        if self.operation == 1:  # SUM: 0 + c0*x0 + c1*x1 + ..., Caffe's order
            coeffs = self.coeffs or (1.0,) * len(xs)
            out = xs[0] * coeffs[0] if coeffs[0] != 1 else xs[0]
            for x, c in zip(xs[1:], coeffs[1:]):
                out = torch.add(out, x, alpha=c) if c != 1 else out + x
            return out
        out = xs[0]
        combine = torch.mul if self.operation == 0 else torch.maximum
        for x in xs[1:]:
            out = combine(out, x)
        return out
