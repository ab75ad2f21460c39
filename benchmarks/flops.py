"""FLOPs of a loaded net, counted the way the performance figures state them.

2 x the multiply-adds of direct convolution and deconvolution (1x1 and fc layers included), read
off the net's own Convolution/Deconvolution modules during one forward pass, so the count follows
whatever net and input size is benchmarked. Pools, ReLU, crops and sums are not counted; Winograd
layers are counted at the direct figure, so a "% of peak" above 100 would mean fewer multiplications.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from convert.modules import Convolution, Deconvolution


def per_layer_flops(net: nn.Module, *inputs: torch.Tensor) -> dict[str, float]:
    """{module name: FLOPs} of every Convolution and Deconvolution for these inputs."""
    counts: dict[str, float] = {}

    def count(name: str) -> Callable[[nn.Module, tuple, torch.Tensor], None]:
        def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            _, per_group, kh, kw = module.weight.shape  # conv (O, I/g, k, k); deconv (I, O/g, k, k)
            # A conv output element, or a deconv input element, costs per_group * kh * kw multiply-adds.
            elements = out.numel() if isinstance(module, Convolution) else args[0].numel()
            counts[name] = counts.get(name, 0.0) + 2.0 * elements * per_group * kh * kw
        return hook

    hooks = [m.register_forward_hook(count(name)) for name, m in net.named_modules()
             if isinstance(m, (Convolution, Deconvolution))]
    try:
        with torch.inference_mode():
            net(*inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return counts


def direct_flops(net: nn.Module, *inputs: torch.Tensor) -> float:
    return sum(per_layer_flops(net, *inputs).values())
