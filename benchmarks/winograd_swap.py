"""Benchmark-only: swap chosen 3x3 convolutions of a CaffeModule for WinogradConv2d.

The product integration belongs in convert/layers.py (see benchmarks/README.md); this helper lets
the benchmarks measure the gain on the real runtime before that exists.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from convert.winograd import WinogradConv2d, supports


def eligible(module: nn.Module) -> bool:
    w = getattr(module, "weight", None)
    return (w is not None and w.dim() == 4 and supports(tuple(w.shape), module.stride, module.dilation, module.groups)
            and type(module).__name__ == "Convolution")


def use_winograd(net: nn.Module, layers: dict[str, int]) -> list[str]:
    """Replace net's layers named in ``layers`` (name -> tile size m) in place; returns those swapped."""
    done = []
    for i, step in enumerate(net._steps):
        if step.name in layers and eligible(step.module):
            conv = step.module
            new = WinogradConv2d.from_conv(conv.weight, conv.bias, tuple(conv.padding), m=layers[step.name])
            net._modules[step.name] = new
            net._steps[i] = dataclasses.replace(step, module=new)
            done.append(step.name)
    return done
