"""Feature trunks (VGG16, AlexNet) as chains of Caffe-named layers with their coordinate maps.

A model registers every layer directly on itself under the Caffe layer name (``conv1_1``, ``fc6``),
so its ``state_dict`` keys are Caffe's ``<layer>.weight`` / ``<layer>.bias`` with no prefix: the same
keys the generic converter runtime uses, and a converted file loads into either one.

Each step also carries the layer's coordinate map (``convert.coord_map``), so the crop offsets of
the score heads follow from the trunk's geometry instead of being written down as numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
from torch import nn

from convert.coord_map import IDENTITY, CoordMap, compose, conv_map

VGG16_WIDTHS = (64, 128, 256, 512, 512)
VGG16_BLOCK_DEPTHS = (2, 2, 3, 3, 3)
ALEXNET_WIDTHS = (96, 256, 384, 384, 256)
FC_WIDTHS = (4096, 4096)
FIRST_PAD = 100  # FCN pads the first conv by 100 so that any input size survives down to fc6


@dataclass
class Step:
    """One Caffe layer of a chain: its name, its PyTorch module, and how it maps coordinates."""

    name: str
    module: nn.Module
    coord: CoordMap = IDENTITY


class Chain:
    """Layers registered on an owner module, run in Caffe's order, with each blob's coordinate map.

    A plain object, not a module: the owner holds the layers (so their keys stay unprefixed), the
    chain only remembers their order and where each output sits relative to the chain's input.
    """

    def __init__(self, owner: nn.Module, steps: Iterable[Step], input_map: CoordMap = IDENTITY) -> None:
        self.names: list[str] = []
        self.maps: dict[str, CoordMap] = {}
        current = input_map
        for step in steps:
            owner.add_module(step.name, step.module)
            current = compose(current, step.coord)
            self.names.append(step.name)
            self.maps[step.name] = current

    @property
    def output_map(self) -> CoordMap:
        return self.maps[self.names[-1]]

    def run(self, owner: nn.Module, x: torch.Tensor, taps: Sequence[str] = ()) -> dict[str, torch.Tensor]:
        """Run the chain; return the outputs of the ``taps`` layers and the last one (key 'out')."""
        outputs: dict[str, torch.Tensor] = {}
        modules = owner._modules
        for name in self.names:
            x = modules[name](x)
            if name in taps:
                outputs[name] = x
        outputs["out"] = x
        return outputs


def conv(name: str, in_channels: int, out_channels: int, kernel: int, stride: int = 1, pad: int = 0,
         groups: int = 1) -> Step:
    """A Caffe Convolution (cross-correlation with bias, as nn.Conv2d)."""
    module = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=pad, groups=groups)
    return Step(name, module, conv_map(kernel, stride, pad))


def max_pool(name: str, kernel: int, stride: int) -> Step:
    """Caffe MAX pooling, pad 0: Caffe rounds output sizes up, which ``ceil_mode`` reproduces."""
    return Step(name, nn.MaxPool2d(kernel, stride, ceil_mode=True), conv_map(kernel, stride))


def relu(name: str) -> Step:
    return Step(name, nn.ReLU(inplace=True))


def dropout(name: str) -> Step:
    """Caffe's Dropout is elementwise and scales at training time, exactly ``nn.Dropout``."""
    return Step(name, nn.Dropout(0.5))


def fully_conv(in_channels: int, fc_widths: Sequence[int], fc6_kernel: int, suffix: str = "") -> list[Step]:
    """fc6 (a k x k convolution over the last pool) and fc7 (1 x 1): the classifier made convolutional."""
    fc6, fc7 = fc_widths
    return [
        conv(f"fc6{suffix}", in_channels, fc6, fc6_kernel), relu(f"relu6{suffix}"), dropout(f"drop6{suffix}"),
        conv(f"fc7{suffix}", fc6, fc7, 1), relu(f"relu7{suffix}"), dropout(f"drop7{suffix}"),
    ]


def vgg16_steps(in_channels: int = 3, widths: Sequence[int] = VGG16_WIDTHS,
                fc_widths: Sequence[int] = FC_WIDTHS, suffix: str = "",
                first_conv: str = "conv1_1") -> list[Step]:
    """The FCN VGG16 trunk up to ``drop7``: 13 convs k3 p1 (the first padded by 100), 5 pools k2 s2.

    ``suffix`` names a second trunk (NYUD color-HHA: ``conv1_1color``); ``first_conv`` renames the
    first convolution alone (NYUD color-D: ``conv1_1_bgrd``, which takes 4 channels).
    """
    steps: list[Step] = []
    channels = in_channels
    for block, (width, depth) in enumerate(zip(widths, VGG16_BLOCK_DEPTHS), start=1):
        for i in range(1, depth + 1):
            name = first_conv if (block, i) == (1, 1) else f"conv{block}_{i}"
            pad = FIRST_PAD if (block, i) == (1, 1) else 1
            steps += [conv(f"{name}{suffix}", channels, width, 3, pad=pad), relu(f"relu{block}_{i}{suffix}")]
            channels = width
        steps.append(max_pool(f"pool{block}{suffix}", 2, 2))
    return steps + fully_conv(channels, fc_widths, 7, suffix)


def alexnet_steps(in_channels: int = 3, widths: Sequence[int] = ALEXNET_WIDTHS,
                  fc_widths: Sequence[int] = FC_WIDTHS) -> list[Step]:
    """The FCN-AlexNet trunk (CaffeNet order: pool before LRN), conv1 padded by 100, fc6 k6."""
    c1, c2, c3, c4, c5 = widths
    return [
        conv("conv1", in_channels, c1, 11, stride=4, pad=FIRST_PAD), relu("relu1"),
        max_pool("pool1", 3, 2), Step("norm1", nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75)),
        conv("conv2", c1, c2, 5, pad=2, groups=2), relu("relu2"),
        max_pool("pool2", 3, 2), Step("norm2", nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75)),
        conv("conv3", c2, c3, 3, pad=1), relu("relu3"),
        conv("conv4", c3, c4, 3, pad=1, groups=2), relu("relu4"),
        conv("conv5", c4, c5, 3, pad=1, groups=2), relu("relu5"),
        max_pool("pool5", 3, 2),
    ] + fully_conv(c5, fc_widths, 6)
