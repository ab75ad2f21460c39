"""Caffe's Convolution, Deconvolution and InnerProduct: the layers with a weight matrix.

Convolution is ``F.conv2d`` exactly (cross-correlation, floor output size, grouped channel blocks,
weight (out, in/group, kh, kw)); Deconvolution is ``F.conv_transpose2d`` (weight (in, out/group,
kh, kw)). Faster CPU equivalents exist for some layers; which one runs is decided in
``convert.fastpath`` (inference) and ``convert.trainpath`` (with gradients), never here.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convert import fastpath, trainpath
from convert.coord_map import WindowGeometry
from convert.winograd import TransformCache


class _Windowed(nn.Module):
    """What convolution and deconvolution share: geometry, groups, and weight-then-bias blobs."""

    def __init__(self, geometry: WindowGeometry, groups: int) -> None:
        super().__init__()
        self.stride, self.padding, self.dilation = geometry.stride, geometry.pad, geometry.dilation
        self.groups = groups
        self.fast_paths = True  # False: always F.conv2d / F.conv_transpose2d (convert.fastpath.set_exact)
        self.register_parameter("weight", None)  # placeholders fix the state-dict order; the
        self.register_parameter("bias", None)  # blobs replace them (bias only with bias_term)


class Convolution(_Windowed):
    """Caffe's convolution. ``path`` names the computation a call takes (``convert.fastpath``)."""

    def __init__(self, geometry: WindowGeometry, groups: int) -> None:
        super().__init__(geometry, groups)
        self.allow_layout_change = False  # may run in another memory layout (set by CaffeModule)
        # Transformed weights of the Winograd paths, by tile size: not in the state dict.
        self.winograd_transforms = {m: TransformCache(m) for m in (2, 4)}

    def path(self, x: Tensor) -> str:
        """How this layer computes ``x``: a key of ``fastpath.CONVOLUTION_PATHS``."""
        return fastpath.convolution_path(self, x)

    def forward(self, x: Tensor) -> Tensor:
        if trainpath.applies(self, x):  # a gradient is wanted: the training paths
            return trainpath.convolution(self, x)
        return fastpath.CONVOLUTION_PATHS[self.path(x)](self, x)


class Deconvolution(_Windowed):
    """Caffe's deconvolution: ``F.conv_transpose2d``, weight (in, out/group, kh, kw).

    FCN's upsampling layers hold one bilinear kernel per class on the diagonal of a (K, K, k, k)
    weight and zeros elsewhere. Such a weight is a depthwise transposed convolution: the same numbers
    with K times less work (``convert.fastpath.deconvolution_path`` decides when). The state
    dict keeps Caffe's full weight; the diagonal test runs again whenever the weight tensor changes
    (new storage or an in-place write bumps its version).
    """

    def __init__(self, geometry: WindowGeometry, groups: int) -> None:
        super().__init__(geometry, groups)
        self._diagonal_key: tuple | None = None
        self._diagonal = False

    def is_diagonal(self) -> bool:
        """Whether weight[i, j] is exactly zero for every i != j (with one group, C_in == C_out)."""
        w = self.weight
        try:
            key = (w.data_ptr(), w._version, w.device)
        except RuntimeError:  # inference tensors carry no version counter: check every time
            key = None
        if key is None or key != self._diagonal_key:
            square = self.groups == 1 and w.shape[0] == w.shape[1]
            if square:
                nonzero = (w != 0).flatten(2).any(dim=2)
                off_diagonal = ~torch.eye(w.shape[0], dtype=torch.bool, device=w.device)
                square = not bool((nonzero & off_diagonal).any())
            self._diagonal_key, self._diagonal = key, square
        return self._diagonal

    def path(self, x: Tensor) -> str:
        """How this layer computes ``x``: a key of ``fastpath.DECONVOLUTION_PATHS``."""
        return fastpath.deconvolution_path(self, x)

    def forward(self, x: Tensor) -> Tensor:
        return fastpath.DECONVOLUTION_PATHS[self.path(x)](self, x)


class InnerProduct(nn.Module):
    """Flattens the axes from ``axis`` on and applies the (out, in) weight; ``transpose`` stores it
    as (in, out)."""

    def __init__(self, axis: int, transpose: bool) -> None:
        super().__init__()
        self.axis = axis
        self.transpose = transpose
        self.register_parameter("weight", None)  # placeholders fix the state-dict order; the
        self.register_parameter("bias", None)  # blobs replace them (bias only with bias_term)

    def forward(self, x: Tensor) -> Tensor:
        axis = self.axis if self.axis >= 0 else self.axis + x.dim()
        x = x.flatten(axis) if x.dim() > axis + 1 else x
        weight = self.weight.t() if self.transpose else self.weight
        return F.linear(x, weight, self.bias)
