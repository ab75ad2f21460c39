"""Benchmark-only: run a CaffeModule with its fast paths off, measured (the default), or forced.

The runtime picks each layer's path in one place, ``convert.fastpath`` (measured on this machine,
accuracy-gated). Here the same loaded net can also run with every fast path off (``exact``: what
``convert.load_caffe(..., exact=True)`` gives, plain F.conv2d in NCHW) and with the fixed rules the
runtime used before the paths were measured (``rules``: channels_last everywhere, unpadded convs as
one GEMM, Winograd F(4x4) for 3x3 convs with >= 512 channels, no accuracy gate), by shadowing each
module's ``path`` with an instance attribute.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from convert import fastpath
from convert.modules import Convolution, Deconvolution
from convert.runtime import CaffeModule

MODES = {
    "exact": "exact=True: NCHW, F.conv2d everywhere (no fast path)",
    "measured": "measured per layer on this machine, accuracy-gated (the runtime's default)",
    "rules": "fixed rules of the AMD tuning: channels_last + GEMM + Winograd F(4x4) >= 512 ch, no gate",
}


def _rules(conv: Convolution) -> Callable[[Tensor], str]:
    def path(x: Tensor) -> str:
        names = fastpath.convolution_candidates(conv, x)
        cout, cin, kh, kw = conv.weight.shape
        if "gemm" in names:
            return "gemm"
        if "winograd" in names and min(cin, cout) >= 512:
            return "winograd"
        return "conv2d_channels_last" if "conv2d_channels_last" in names else "conv2d"
    return path


def set_mode(net: CaffeModule, mode: str) -> None:
    """Switch ``net`` to ``mode`` (a key of MODES) in place."""
    fastpath.set_exact(net, mode == "exact")
    for module in net.modules():
        if isinstance(module, (Convolution, Deconvolution)):
            module.__dict__.pop("path", None)
            if mode == "rules" and isinstance(module, Convolution):
                module.path = _rules(module)


def layer_paths(net: CaffeModule, x: Tensor) -> dict[str, str]:
    """{layer: path} the net takes for input x (hooks record each layer's choice)."""
    seen: dict[str, str] = {}
    handles = []
    for step in net.layers():
        if isinstance(step.module, (Convolution, Deconvolution)):
            def hook(module, args, name=step.name):
                seen[name] = module.path(args[0])
            handles.append(step.module.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    return seen
