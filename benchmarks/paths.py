"""Benchmark-only: run a CaffeModule with some of its fast paths switched off, to measure each.

The runtime picks its paths in one place (``convert.fastpath``: ``Convolution.path`` and, for
channels_last, ``CaffeModule.channels_last_for``); here an instance attribute shadows ``path`` so the same
loaded net can be timed as it ran before the fast paths existed, and with each one added.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor

from convert.modules import Convolution
from convert.runtime import CaffeModule

MODES = {
    "before": "NCHW, F.conv2d everywhere (the runtime before the fast paths)",
    "gemm": "channels_last + unpadded convs as one oneDNN GEMM (no Winograd)",
    "all": "channels_last + GEMM + Winograd F(4x4) for 512-channel 3x3 convs (the runtime's default)",
}


def _without(conv: Convolution, banned: set[str]) -> Callable[[Tensor], str]:
    chosen = Convolution.path

    def path(x: Tensor) -> str:
        p = chosen(conv, x)
        return "conv2d" if p in banned else p
    return path


def set_mode(net: CaffeModule, mode: str) -> None:
    """Switch ``net`` to ``mode`` (a key of MODES) in place."""
    banned = {"before": {"gemm", "winograd"}, "gemm": {"winograd"}, "all": set()}[mode]
    net.use_channels_last = mode != "before"
    for module in net.modules():
        if isinstance(module, Convolution):
            module.__dict__.pop("path", None)
            if banned:
                module.path = _without(module, banned)


def layer_paths(net: CaffeModule, x: Tensor) -> dict[str, str]:
    """{layer: path} the net takes for input x (hooks record each convolution's choice)."""
    import torch

    seen: dict[str, str] = {}
    handles = []
    for step in net.layers():
        if isinstance(step.module, Convolution):
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
