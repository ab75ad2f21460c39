"""Caffe layers that pick, repeat or produce values rather than compute them: ArgMax,
BatchReindex, Embed, Filter, Tile, Im2col, and the bottomless Parameter and constant DummyData.

Indices travel as floats, as in Caffe's blobs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _top_k(values: Tensor, k: int, dim: int) -> tuple[Tensor, Tensor]:
    """The k largest along ``dim``, ties broken as Caffe's ``partial_sort`` over (value, index)
    pairs with ``std::greater`` breaks them: the higher index first."""
    flipped = values.flip(dim)
    ordered, index = torch.sort(flipped, dim=dim, descending=True, stable=True)
    size = values.shape[dim]
    return ordered.narrow(dim, 0, k), (size - 1 - index).narrow(dim, 0, k)


class ArgMax(nn.Module):
    """Indices (or values, ``out_max_val``) of the ``top_k`` largest along ``axis``; without an
    axis, over each item's flattened values, giving (N, 1 or 2, top_k) padded with 1s to the
    bottom's rank (indices first, then values, when both are asked for)."""

    def __init__(self, top_k: int, out_max_val: bool, axis: int | None) -> None:
        super().__init__()
        self.top_k, self.out_max_val, self.axis = top_k, out_max_val, axis

    def forward(self, x: Tensor) -> Tensor:
        if self.axis is not None:
            values, index = _top_k(x, self.top_k, self.axis)
            return values if self.out_max_val else index.to(x.dtype)
        values, index = _top_k(x.reshape(x.shape[0], -1), self.top_k, 1)
        parts = [index.to(x.dtype), values] if self.out_max_val else [index.to(x.dtype)]
        shape = [x.shape[0], len(parts), self.top_k] + [1] * (max(3, x.dim()) - 3)
        return torch.stack(parts, dim=1).reshape(shape)


class BatchReindex(nn.Module):
    """x[indices]: items of the first bottom in the order the second bottom lists."""

    def forward(self, x: Tensor, indices: Tensor) -> Tensor:
        index = indices.reshape(-1).long()
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= x.shape[0]):
            raise ValueError(f"BatchReindex: index out of range [0, {x.shape[0]})")
        return x[index]


class Embed(nn.Module):
    """Rows of the (input_dim, num_output) weight picked by integer-valued inputs, plus the bias;
    the top has the bottom's shape with num_output appended."""

    def __init__(self, bias_term: bool) -> None:
        super().__init__()
        self.bias_term = bias_term

    def forward(self, x: Tensor) -> Tensor:
        index = x.long()
        if not torch.equal(index.to(x.dtype), x) or (index.numel() and (
                int(index.min()) < 0 or int(index.max()) >= self.weight.shape[0])):
            raise ValueError(f"Embed: inputs must be integers in [0, {self.weight.shape[0]})")
        out = self.weight[index]
        return out + self.bias if self.bias_term else out


class Filter(nn.Module):
    """The items (along axis 0) of every bottom but the last whose entry in the last bottom, the
    selector, is non-zero."""

    multi_output = True

    def forward(self, *bottoms: Tensor) -> tuple[Tensor, ...]:
        selector = bottoms[-1]
        if selector.dim() and any(d != 1 for d in selector.shape[1:]):
            raise ValueError("Filter: selector dimensions must be 1 except the first")
        keep = selector.reshape(-1) != 0
        return tuple(x[keep] for x in bottoms[:-1])


class Tile(nn.Module):
    """The block of axes from ``axis`` on, repeated ``tiles`` times along ``axis``."""

    def __init__(self, axis: int, tiles: int) -> None:
        super().__init__()
        self.axis, self.tiles = axis, tiles

    def forward(self, x: Tensor) -> Tensor:
        repeats = [1] * x.dim()
        repeats[self.axis] = self.tiles
        return x.repeat(repeats)


class Im2col(nn.Module):
    """Each convolution window as a column: (N, C kh kw, H_out, W_out), channel-major like
    Caffe's im2col (and ``F.unfold``)."""

    def __init__(self, kernel: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int],
                 dilation: tuple[int, int]) -> None:
        super().__init__()
        self.kernel, self.stride, self.pad, self.dilation = kernel, stride, pad, dilation

    def forward(self, x: Tensor) -> Tensor:
        h, w = ((size + 2 * p - (d * (k - 1) + 1)) // s + 1 for size, k, s, p, d in
                zip(x.shape[2:], self.kernel, self.stride, self.pad, self.dilation))
        columns = F.unfold(x, self.kernel, self.dilation, self.pad, self.stride)
        return columns.reshape(x.shape[0], -1, h, w)


class Constant(nn.Module):
    """A layer without bottoms whose tops are fixed tensors: Parameter (its learned blob, the
    ``value`` parameter) and DummyData with constant fillers (buffers, outside the state dict)."""

    def __init__(self, values: list[Tensor] | None = None) -> None:
        super().__init__()
        for i, value in enumerate(values or []):
            self.register_buffer(f"top{i}", value, persistent=False)
        self.count = len(values or [])
        self.multi_output = self.count > 1

    def forward(self) -> Tensor | tuple[Tensor, ...]:
        if not self.count:  # Parameter: its one blob (shared, as Caffe shares it; no grad at inference)
            return self.value if torch.is_grad_enabled() else self.value.detach()
        tops = tuple(getattr(self, f"top{i}") for i in range(self.count))
        return tops if self.multi_output else tops[0]
