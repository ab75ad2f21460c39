"""Feature trunks (VGG16, AlexNet): Caffe's layers in order, returning the blobs a score head taps.

Every layer is a child named as its Caffe layer (``conv1_1``, ``pool4``, ``fc7``), so ``print``
shows the trunk as the prototxt lists it. A trunk also knows each blob's coordinate map
(``convert.coord_map``, relative to the input) and channel count, so the heads compute their crop
offsets from the geometry instead of writing them down.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn

from convert.coord_map import IDENTITY, CoordMap, compose, conv_map

VGG16_WIDTHS = (64, 128, 256, 512, 512)
VGG16_BLOCK_DEPTHS = (2, 2, 3, 3, 3)
ALEXNET_WIDTHS = (96, 256, 384, 384, 256)
FC_WIDTHS = (4096, 4096)
FIRST_PAD = 100  # FCN pads the first conv by 100 so that any input size survives down to fc6

Layer = tuple[str, nn.Module]


class Trunk(nn.Module):
    """Layers run in Caffe's order; ``forward`` returns the ``taps`` blobs and ``fc7`` by name.

    In-place layers (ReLU, Dropout) keep their input's blob name, as in Caffe: ``fc7`` is the
    output of ``drop7``. ``maps[name]`` and ``channels[name]`` describe the blob of that name.
    """

    def __init__(self, layers: Iterable[Layer], in_channels: int, taps: Sequence[str] = ()) -> None:
        super().__init__()
        self.taps = tuple(taps)
        self.maps: dict[str, CoordMap] = {}
        self.channels: dict[str, int] = {}
        current, channels, blob = IDENTITY, in_channels, ""
        for name, module in layers:
            self.add_module(name, module)
            current = compose(current, _coord_map(module))
            if isinstance(module, nn.Conv2d):
                channels = module.out_channels
            if not isinstance(module, (nn.ReLU, nn.Dropout)):
                blob = name
            self.maps[blob], self.channels[blob] = current, channels
        self.output = blob

    def blobs(self, x: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
        """Run the trunk; the blobs named ``names`` (as after their in-place layers) and the output."""
        out: dict[str, torch.Tensor] = {}
        blob = ""
        for name, layer in self.named_children():
            x = layer(x)
            if not isinstance(layer, (nn.ReLU, nn.Dropout)):
                blob = name
            if blob in names:
                out[blob] = x
        out[self.output] = x
        return out

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.blobs(x, self.taps)


def _coord_map(module: nn.Module) -> CoordMap:
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
        kernel, stride, pad = (v if isinstance(v, int) else v[0]
                               for v in (module.kernel_size, module.stride, module.padding))
        return conv_map(kernel, stride, pad)
    return IDENTITY  # ReLU, Dropout, LRN keep every pixel where it is


def conv(name: str, in_channels: int, out_channels: int, kernel: int, stride: int = 1, pad: int = 0,
         groups: int = 1) -> Layer:
    """A Caffe Convolution (cross-correlation with bias, as nn.Conv2d)."""
    return name, nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=pad, groups=groups)


def max_pool(name: str, kernel: int, stride: int) -> Layer:
    """Caffe MAX pooling, pad 0: Caffe rounds output sizes up, which ``ceil_mode`` reproduces."""
    return name, nn.MaxPool2d(kernel, stride, ceil_mode=True)


def relu(name: str) -> Layer:
    return name, nn.ReLU(inplace=True)


def dropout(name: str) -> Layer:
    """Caffe's Dropout is elementwise and scales at training time, exactly ``nn.Dropout``."""
    return name, nn.Dropout(0.5)


def lrn(name: str) -> Layer:
    """CaffeNet's LRN across channels: local_size 5, alpha 1e-4, beta 0.75."""
    return name, nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75)


def fully_conv(in_channels: int, fc_widths: Sequence[int], fc6_kernel: int) -> list[Layer]:
    """fc6 (a k x k convolution over the last pool) and fc7 (1 x 1): the classifier made convolutional."""
    fc6, fc7 = fc_widths
    return [conv("fc6", in_channels, fc6, fc6_kernel), relu("relu6"), dropout("drop6"),
            conv("fc7", fc6, fc7, 1), relu("relu7"), dropout("drop7")]


class VGG16(Trunk):
    """The FCN VGG16 trunk up to ``drop7``: 13 convs k3 p1 (the first padded by 100), 5 pools k2 s2,
    fc6 (k7) and fc7 as convolutions. ``first_conv`` renames the first convolution (NYUD color-D:
    ``conv1_1_bgrd``, which takes 4 channels)."""

    def __init__(self, in_channels: int = 3, widths: Sequence[int] = VGG16_WIDTHS,
                 fc_widths: Sequence[int] = FC_WIDTHS, taps: Sequence[str] = ("pool3", "pool4"),
                 first_conv: str = "conv1_1") -> None:
        layers: list[Layer] = []
        channels = in_channels
        for block, (width, depth) in enumerate(zip(widths, VGG16_BLOCK_DEPTHS), start=1):
            for i in range(1, depth + 1):
                first = (block, i) == (1, 1)
                name = first_conv if first else f"conv{block}_{i}"
                layers += [conv(name, channels, width, 3, pad=FIRST_PAD if first else 1),
                           relu(f"relu{block}_{i}")]
                channels = width
            layers.append(max_pool(f"pool{block}", 2, 2))
        super().__init__(layers + fully_conv(channels, fc_widths, 7), in_channels, taps)


class AlexNet(Trunk):
    """The FCN-AlexNet trunk (CaffeNet order: pool before LRN, grouped conv2/4/5), conv1 padded by
    100, fc6 k6."""

    def __init__(self, in_channels: int = 3, widths: Sequence[int] = ALEXNET_WIDTHS,
                 fc_widths: Sequence[int] = FC_WIDTHS, taps: Sequence[str] = ()) -> None:
        c1, c2, c3, c4, c5 = widths
        layers = [
            conv("conv1", in_channels, c1, 11, stride=4, pad=FIRST_PAD), relu("relu1"),
            max_pool("pool1", 3, 2), lrn("norm1"),
            conv("conv2", c1, c2, 5, pad=2, groups=2), relu("relu2"),
            max_pool("pool2", 3, 2), lrn("norm2"),
            conv("conv3", c2, c3, 3, pad=1), relu("relu3"),
            conv("conv4", c3, c4, 3, pad=1, groups=2), relu("relu4"),
            conv("conv5", c4, c5, 3, pad=1, groups=2), relu("relu5"),
            max_pool("pool5", 3, 2),
        ]
        super().__init__(layers + fully_conv(c5, fc_widths, 6), in_channels, taps)
