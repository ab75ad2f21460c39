"""Caffe's layers that move values without computing new ones: Crop, Concat, Split, Slice,
Silence, Flatten and Reshape.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn


class Crop(nn.Module):
    """Caffe's Crop: axes from ``axis`` on take the reference's size, starting at ``offsets``
    (top-left, never centred). The result is a view, like a slice."""

    def __init__(self, axis: int, offsets: Sequence[int]) -> None:
        super().__init__()
        self.axis = axis
        self.offsets = tuple(offsets)

    def forward(self, x: Tensor, reference: Tensor) -> Tensor:
        axis = self.axis if self.axis >= 0 else self.axis + x.dim()
        count = x.dim() - axis
        offsets = self.offsets * count if len(self.offsets) == 1 else self.offsets
        if len(offsets) != count:
            raise ValueError(f"Crop has {len(self.offsets)} offsets for {count} cropped axes")
        index: list[slice] = [slice(None)] * axis
        for dim, offset in enumerate(offsets, start=axis):
            size = reference.shape[dim]
            if offset + size > x.shape[dim]:
                raise ValueError(f"Crop of axis {dim}: offset {offset} + size {size} exceeds {x.shape[dim]}")
            index.append(slice(offset, offset + size))
        return x[tuple(index)]


class Concat(nn.Module):
    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, *xs: Tensor) -> Tensor:
        return torch.cat(xs, dim=self.axis)


class Split(nn.Module):
    """The same blob under several names (Caffe shares the data, and so do we)."""

    multi_output = True

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return (x,) * self.count


class Slice(nn.Module):
    """Cut along ``axis`` at ``points`` (or into equal parts when none are given)."""

    multi_output = True

    def __init__(self, axis: int, points: Sequence[int], count: int) -> None:
        super().__init__()
        self.axis, self.points, self.count = axis, tuple(points), count

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        size = x.shape[self.axis]
        if self.points:
            bounds = (0, *self.points, size)
            return tuple(x.narrow(self.axis, a, b - a) for a, b in zip(bounds, bounds[1:]))
        if size % self.count:
            raise ValueError(f"Slice: axis size {size} does not split into {self.count} equal parts")
        return tuple(torch.split(x, size // self.count, dim=self.axis))


class Silence(nn.Module):
    """Consumes blobs, produces nothing."""

    multi_output = True

    def forward(self, *xs: Tensor) -> tuple[()]:
        return ()


class Flatten(nn.Module):
    def __init__(self, axis: int, end_axis: int) -> None:
        super().__init__()
        self.axis, self.end_axis = axis, end_axis

    def forward(self, x: Tensor) -> Tensor:
        return torch.flatten(x, self.axis, self.end_axis)


class Reshape(nn.Module):
    """Replace axes [axis, axis + num_axes) by ``dims``: 0 copies the input's size there, -1 is
    inferred. Negative ``axis`` counts from the end as Caffe does (-1 is after the last axis)."""

    def __init__(self, dims: Sequence[int], axis: int, num_axes: int) -> None:
        super().__init__()
        self.dims, self.axis, self.num_axes = tuple(dims), axis, num_axes

    def output_shape(self, shape: Sequence[int]) -> list[int]:
        start = self.axis if self.axis >= 0 else len(shape) + self.axis + 1
        end = len(shape) if self.num_axes == -1 else start + self.num_axes
        if not 0 <= start <= end <= len(shape):
            raise ValueError(f"Reshape axes [{start}, {end}) do not fit a {len(shape)}-D blob")
        middle = [shape[start + i] if d == 0 else d for i, d in enumerate(self.dims)]
        return [*shape[:start], *middle, *shape[end:]]

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(self.output_shape(x.shape))
