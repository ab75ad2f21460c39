"""Dense prediction from a coarse net, the two ways of section 3.2: shift-and-stitch, and filter
rarefaction (the a trous trick), which computes the same numbers in one pass.

A net of output stride S scores one pixel in S per axis. Shift-and-stitch runs it on the f x f
inputs shifted by multiples of S/f and interlaces the outputs: a score map of stride S/f.
Rarefaction gets that map directly from a copy of the net in which one stride is divided by f and
every later filter is dilated by f: a dilated filter on the interlaced blob reads each of its f x f
phases on its own, as the original filter reads each shifted net's blob. Max pooling windows are
dilated the same way (``MaxPool2d(dilation=f)``: the paper's rarefied filter, with the holes left
out of the max instead of being zero weights), and every later padding grows by f.

Where the two are equal (``exact_region``): every output whose receptive field lies inside the
picture that its shift sees. There no layer reads padding, and both compute the same function of the
same pixels, equal up to summation order (fp32 noise). Elsewhere they differ: the shifted net pads
its cropped input with zeros where the rarefied net reads picture, and its intermediate paddings
fall on different places. Nets without padding whose pooling never clips a window are equal
everywhere.

A net here is any module whose convolutions and poolings, in registration order, are its execution
order and whose spatial layers are all convolutions, poolings or pointwise layers: the chain up to
``score_fr`` of a zoo model or of the generic runtime (``chain``), or a classifier trunk.
"""
from __future__ import annotations

import copy
import math
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Callable

import torch
from torch import Tensor, nn

from convert.modules import Convolution as CaffeConvolution, Pooling as CaffePooling, Split
from convert.runtime import CaffeModule

# Leaves that keep every pixel where it is, by class name (torch's and the generic runtime's, which
# the layers of ``convert`` define wherever they live): ignored by the geometry.
POINTWISE = frozenset({
    "ReLU", "Dropout", "LocalResponseNorm", "LRN", "Identity", "Elementwise", "Power", "Exp", "Scale",
    "BatchNorm", "Bias", "PReLU", "Sigmoid", "Tanh", "Threshold",
})
CONVOLUTIONS = (nn.Conv2d, CaffeConvolution)


@dataclass(frozen=True)
class Window:
    """One spatial layer's geometry along one axis (square layers only, as in every FCN)."""

    name: str
    kernel: int
    stride: int
    pad: int
    dilation: int = 1

    @property
    def extent(self) -> int:
        return (self.kernel - 1) * self.dilation + 1


def _one(value, what: str, name: str) -> int:
    values = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(set(values)) != 1:
        raise ValueError(f"{name}: {what} {values} differs between height and width; only square layers")
    return int(values[0])


def window_of(name: str, module: nn.Module) -> Window | None:
    """The geometry of a convolution or pooling leaf; None for a pointwise one; ValueError else."""
    if isinstance(module, CONVOLUTIONS):
        return Window(name, _one(module.weight.shape[-2:], "kernel", name), _one(module.stride, "stride", name),
                      _one(module.padding, "pad", name), _one(module.dilation, "dilation", name))
    if isinstance(module, DilatedMaxPool):
        return module.window
    if isinstance(module, nn.MaxPool2d):
        return Window(name, _one(module.kernel_size, "kernel", name), _one(module.stride, "stride", name),
                      _one(module.padding, "pad", name), _one(module.dilation, "dilation", name))
    if isinstance(module, CaffePooling):
        if module.average:
            raise ValueError(f"{name}: AVE pooling has no dilated form here (FCNs discard it, sec. 4.1)")
        return Window(name, _one(module.kernel, "kernel", name), _one(module.stride, "stride", name),
                      _one(module.pad, "pad", name))
    if type(module).__name__ in POINTWISE:
        return None
    raise ValueError(f"{name}: {type(module).__name__} is neither a convolution, a pooling nor pointwise")


def windows(net: nn.Module) -> list[Window]:
    """The convolutions and poolings of ``net`` in registration (= execution) order."""
    found = []
    for name, module in net.named_modules():
        if name and not any(True for _ in module.children()):
            window = window_of(name, module)
            if window is not None:
                found.append(window)
    return found


def output_stride(net: nn.Module) -> int:
    return math.prod(w.stride for w in windows(net))


def receptive_field(net: nn.Module) -> int:
    """Pixels one output sees per axis (VGG16 FCN: 404, AlexNet: 355, as in the paper's Table 1)."""
    field, jump = 1, 1
    for w in windows(net):
        field += (w.extent - 1) * jump
        jump *= w.stride
    return field


def field_start(net: nn.Module) -> int:
    """Input coordinate where output 0's receptive field starts (negative: it reaches into padding)."""
    start, jump = 0, 1
    for w in windows(net):
        start -= w.pad * jump
        jump *= w.stride
    return start


# ----------------------------------------------------------------------------- taking the chain


def chain(model: nn.Module, until: str = "score_fr") -> nn.Sequential:
    """The layers of ``model`` up to and including ``until``, as one Sequential sharing their modules.

    ``model`` is the generic runtime (``convert.load``; its layers must form a single chain there)
    or any module that registers its layers in execution order (the fcn_ref zoo models).
    """
    if isinstance(model, CaffeModule):
        picked: list[tuple[str, nn.Module]] = []
        current = set(model.input_names[:1])  # names of the chain's blob (Caffe's Splits alias it)
        for step in model.layers():
            if isinstance(step.module, Split) and step.bottoms[0] in current:
                current |= set(step.tops)
                continue
            if not current & set(step.bottoms):
                continue  # a layer of another branch
            if len(step.bottoms) != 1 or len(step.tops) != 1:
                raise ValueError(f"layer {step.name} joins or splits the chain ({step.bottoms} -> "
                                 f"{step.tops}); rarefaction here needs a single chain")
            picked.append((step.name, step.module))
            current = {step.tops[0]}
            if step.name == until:
                return nn.Sequential(OrderedDict(picked))
        raise ValueError(f"the net has no layer {until!r}")
    picked = []
    for name, module in model.named_modules():
        if name and not any(True for _ in module.children()):
            short = name.rsplit(".", 1)[-1]  # the Caffe layer name, where it is unique
            picked.append((short if short not in dict(picked) else name.replace(".", "/"), module))
            if name == until or name.rsplit(".", 1)[-1] == until:
                return nn.Sequential(OrderedDict(picked))
    raise ValueError(f"{type(model).__name__} has no layer {until!r}")


# ----------------------------------------------------------------------------- the two methods


def shift_and_stitch(net: Callable[[Tensor], Tensor], x: Tensor, factor: int, stride: int) -> Tensor:
    """Run ``net`` (output stride ``stride``) on the ``factor``^2 inputs shifted by multiples of
    ``stride / factor`` and interlace: output pixel (f*i + u, f*j + v) is the shifted net's (i, j).

    A shift by d crops the first d rows (columns), so the shifted net's output i is centred d pixels
    further on. The result is as long as every phase fills: min over u of f * n_u + u per axis.
    """
    if factor < 1 or stride % factor:
        raise ValueError(f"factor {factor} must divide the output stride {stride}")
    step = stride // factor
    outs = {(u, v): net(x[..., u * step:, v * step:]) for u in range(factor) for v in range(factor)}
    height = min(factor * outs[(u, 0)].shape[-2] + u for u in range(factor))
    width = min(factor * outs[(0, v)].shape[-1] + v for v in range(factor))
    sample = outs[(0, 0)]
    dense = sample.new_empty(*sample.shape[:-2], height, width)
    for (u, v), out in outs.items():
        rows, cols = len(range(u, height, factor)), len(range(v, width, factor))
        dense[..., u::factor, v::factor] = out[..., :rows, :cols]
    return dense


def reductions(net: nn.Module, factor: int) -> dict[str, int]:
    """Which strides to divide, and by what, so that the output stride falls by ``factor``: the last
    strided layers first (a later strided layer would otherwise mix the interlaced phases)."""
    todo, plan = factor, {}
    for w in reversed(windows(net)):
        if todo == 1:
            break
        if w.stride > 1:
            by = math.gcd(todo, w.stride)
            if by > 1:
                plan[w.name] = by
                todo //= by
            if todo > 1 and by < w.stride:
                break
    if todo != 1:
        raise ValueError(f"factor {factor} does not divide the strides of the last strided layers "
                         f"({output_stride(net)} in all)")
    return plan


def rarefy(net: nn.Module, factor: int) -> nn.Module:
    """A copy of ``net`` whose output stride is ``factor`` times finer, computing shift-and-stitch's
    output in one pass: the last strided layers' strides divided (``reductions``), every layer
    after a reduced one dilated (and padded) by the reductions before it."""
    plan = reductions(net, factor)
    dense = copy.deepcopy(net)
    modules = dict(dense.named_modules())
    dilation = 1
    for w in windows(net):
        stride = w.stride // plan.get(w.name, 1)
        if dilation > 1 or stride != w.stride:
            _set_window(dense, w.name, modules[w.name], replace(w, stride=stride, pad=w.pad * dilation,
                                                                 dilation=w.dilation * dilation))
        dilation *= plan.get(w.name, 1)
    return dense


def _set_window(root: nn.Module, name: str, module: nn.Module, w: Window) -> None:
    if isinstance(module, CONVOLUTIONS):
        module.stride, module.padding, module.dilation = (w.stride,) * 2, (w.pad,) * 2, (w.dilation,) * 2
        return
    parent_name, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child, DilatedMaxPool(w))


class DilatedMaxPool(nn.Module):
    """Max pooling over a dilated window, padded with -inf by ``pad`` on every side (PyTorch's own
    padding stops at half the undilated kernel). Stride 1 takes every window, as Caffe would; a
    strided one rounds up like Caffe's pooling (``ceil_mode``)."""

    def __init__(self, window: Window) -> None:
        super().__init__()
        self.window = window

    def forward(self, x: Tensor) -> Tensor:
        w = self.window
        if w.pad:
            x = nn.functional.pad(x, (w.pad,) * 4, value=float("-inf"))
        return nn.functional.max_pool2d(x, w.kernel, w.stride, 0, w.dilation, ceil_mode=True)

    def extra_repr(self) -> str:
        w = self.window
        return f"kernel={w.kernel}, stride={w.stride}, pad={w.pad}, dilation={w.dilation}"


# ----------------------------------------------------------------------------- where they agree


def exact_region(net: nn.Module, factor: int, size: int) -> list[int]:
    """Indices along one axis of an input of ``size`` pixels where ``rarefy(net, factor)`` equals
    ``shift_and_stitch``: outputs whose receptive field lies inside the picture their shift sees."""
    stride, field, start = output_stride(net), receptive_field(net), field_start(net)
    step = stride // factor
    exact = []
    for index in range(factor * (size // step + 1)):
        i, u = divmod(index, factor)
        first = u * step + i * stride + start  # first input pixel of the field, in picture coordinates
        if first >= u * step and first + field <= size:
            exact.append(index)
    return exact


def dense_scores(net: nn.Module, x: Tensor, factor: int) -> Tensor:
    """One pass of the rarefied net: scores at ``output_stride(net) / factor``."""
    with torch.no_grad():
        return rarefy(net, factor)(x)
