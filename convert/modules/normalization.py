"""Caffe's normalising layers: LRN, BatchNorm (running sums with a scale factor) and Softmax.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LRN(nn.Module):
    """Local response normalisation. ACROSS_CHANNELS: x / (k + alpha/n * sum of x^2 over n channels)
    ** beta (``F.local_response_norm``, same centred window for Caffe's odd sizes). WITHIN_CHANNEL:
    x / (1 + alpha * mean of x^2 over an n x n zero-padded window) ** beta; Caffe ignores k there."""

    def __init__(self, size: int, alpha: float, beta: float, k: float, within: bool) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k, self.within = size, alpha, beta, k, within

    def forward(self, x: Tensor) -> Tensor:
        if not self.within:
            return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)
        pad = (self.size - 1) // 2
        mean = F.avg_pool2d(x * x, self.size, 1, pad, False, True)
        return x * torch.pow(1 + self.alpha * mean, -self.beta)


class BatchNorm(nn.Module):
    """Caffe's BatchNorm keeps running sums: mean and variance are divided by the scale_factor blob
    (0 gives 0). No affine part; Caffe pairs it with a Scale layer."""

    def __init__(self, eps: float, use_global_stats: bool) -> None:
        super().__init__()
        self.eps = eps
        self.use_global_stats = use_global_stats

    def forward(self, x: Tensor) -> Tensor:
        if not self.use_global_stats:  # normalise by this batch's statistics (biased variance)
            return F.batch_norm(x, None, None, training=True, eps=self.eps)
        factor = self.scale_factor.reshape(())
        scale = torch.where(factor == 0, torch.zeros_like(factor), 1 / factor)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        std = torch.sqrt(self.variance * scale + self.eps)  # Caffe: var + eps, sqrt, then divide
        return (x - (self.mean * scale).view(shape)) / std.view(shape)


class Softmax(nn.Module):
    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, dim=self.axis)
