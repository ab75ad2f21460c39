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
from torch.nn.modules.utils import _pair

from convert.coord_map import IDENTITY, CoordMap, WindowGeometry, compose, compose_all as compose_maps, conv_map
from convert.modules import Concat
from convert.modules.pointwise import trains_in_place
from convert.modules.pooling import relu_max_pool, unhooked
from fcn_ref.blocks import Conv2d, Dropout, ReLU

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
        """Run the trunk; the blobs named ``names`` (as after their in-place layers) and the output.

        An in-place ReLU whose blob only the next max pool reads runs with it as one
        ``relu_max_pool`` (the same numbers; in training its backward needs no new tensor)."""
        out: dict[str, torch.Tensor] = {}
        blob = ""
        layers = list(self.named_children())
        index = 0
        while index < len(layers):
            name, layer = layers[index]
            following = layers[index + 1][1] if index + 1 < len(layers) else None
            if blob not in names and _fusable(x, layer, following):
                x = relu_max_pool(x, _window_geometry(following), following.ceil_mode)
                index += 1
                name, layer = layers[index]
            else:
                x = layer(x)
            index += 1
            if not isinstance(layer, (nn.ReLU, nn.Dropout)):
                blob = name
            if blob in names:
                out[blob] = x
        out[self.output] = x
        return out

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.blobs(x, self.taps)


def _fusable(x: torch.Tensor, layer: nn.Module, following: nn.Module | None) -> bool:
    """An in-place ReLU and a max pool that may run as one ``relu_max_pool``: in training (where
    the fusion pays), on a real tensor (an fx trace must see each layer) and with no hooks on
    either module (each would expect its own call)."""
    return (isinstance(layer, nn.ReLU) and layer.inplace and isinstance(following, nn.MaxPool2d)
            and not following.return_indices and isinstance(x, torch.Tensor) and trains_in_place(x)
            and unhooked(layer, following))


def _window_geometry(pool: nn.MaxPool2d) -> WindowGeometry:
    return WindowGeometry(*(_pair(v) for v in (pool.kernel_size, pool.stride, pool.padding, pool.dilation)))


def _coord_map(module: nn.Module) -> CoordMap:
    if hasattr(module, "coord_map"):  # a container that knows its own (GoogLeNet's stages)
        return module.coord_map
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
        kernel, stride, pad = (v if isinstance(v, int) else v[0]
                               for v in (module.kernel_size, module.stride, module.padding))
        return conv_map(kernel, stride, pad)
    return IDENTITY  # ReLU, Dropout, LRN keep every pixel where it is


def conv(name: str, in_channels: int, out_channels: int, kernel: int, stride: int = 1, pad: int = 0,
         groups: int = 1) -> Layer:
    """A Caffe Convolution (cross-correlation with bias, as nn.Conv2d; ``fcn_ref.blocks.Conv2d``
    takes the measured training paths when a gradient is wanted)."""
    return name, Conv2d(in_channels, out_channels, kernel, stride=stride, padding=pad, groups=groups)


def max_pool(name: str, kernel: int, stride: int) -> Layer:
    """Caffe MAX pooling, pad 0: Caffe rounds output sizes up, which ``ceil_mode`` reproduces."""
    return name, nn.MaxPool2d(kernel, stride, ceil_mode=True)


def relu(name: str) -> Layer:
    return name, ReLU(inplace=True)


def dropout(name: str) -> Layer:
    """Caffe's Dropout: elementwise, scaled at training time (``fcn_ref.blocks.Dropout``)."""
    return name, Dropout(0.5)


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


# ----------------------------------------------------------------------------- GoogLeNet

GOOGLENET_STEM = (64, 64, 192)  # conv1/7x7_s2, conv2/3x3_reduce, conv2/3x3
# (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection) of each inception module (Szegedy et
# al., Table 1), in order; a stride-2 3x3 max pooling follows 3b and 4e.
INCEPTION_KEYS = ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")
INCEPTION_WIDTHS = ((64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64), (192, 96, 208, 16, 48, 64),
                    (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64), (112, 144, 288, 32, 64, 64),
                    (256, 160, 320, 32, 128, 128), (256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128))
GOOGLENET_POOL_AFTER = {"3b": "pool3", "4e": "pool4"}


class Stage(nn.Sequential):
    """Caffe layers that share a name prefix (``conv1/7x7_s2``, ``conv1/relu_7x7``), run in order.
    Children are named after the slash; ``fcn_ref.caffe_names`` joins the two with it again."""

    def __init__(self, layers: Iterable[Layer]) -> None:
        super().__init__()
        for name, module in layers:
            self.add_module(name, module)

    @property
    def coord_map(self) -> CoordMap:
        return compose_maps(_coord_map(m) for m in self)

    @property
    def out_channels(self) -> int | None:
        convs = [m for m in self if isinstance(m, nn.Conv2d)]
        return convs[-1].out_channels if convs else None


class Inception(nn.Module):
    """One inception module: 1x1, 3x3 (after a 1x1 reduction), 5x5 (after a 1x1 reduction) and
    3x3 max pooling (then a 1x1 projection), side by side, concatenated over channels by the
    Concat layer ``output`` (``inception_3a/output``). Every branch keeps each pixel where it is: its coordinate map is the
    identity."""

    coord_map = IDENTITY

    def __init__(self, in_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        n1, n3r, n3, n5r, n5, npool = widths
        for name, module in (
            conv("1x1", in_channels, n1, 1), relu("relu_1x1"),
            conv("3x3_reduce", in_channels, n3r, 1), relu("relu_3x3_reduce"),
            conv("3x3", n3r, n3, 3, pad=1), relu("relu_3x3"),
            conv("5x5_reduce", in_channels, n5r, 1), relu("relu_5x5_reduce"),
            conv("5x5", n5r, n5, 5, pad=2), relu("relu_5x5"),
            ("pool", nn.MaxPool2d(3, 1, 1, ceil_mode=True)),
            conv("pool_proj", in_channels, npool, 1), relu("relu_pool_proj"),
            ("output", Concat(axis=1)),
        ):
            self.add_module(name, module)
        self.out_channels = n1 + n3 + n5 + npool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self._modules
        return m["output"](
            m["relu_1x1"](m["1x1"](x)),
            m["relu_3x3"](m["3x3"](m["relu_3x3_reduce"](m["3x3_reduce"](x)))),
            m["relu_5x5"](m["5x5"](m["relu_5x5_reduce"](m["5x5_reduce"](x)))),
            m["relu_pool_proj"](m["pool_proj"](m["pool"](x))),
        )


class GoogLeNet(Trunk):
    """BVLC GoogLeNet (models/bvlc_googlenet/deploy.prototxt) up to ``inception_5b/output``: the
    stem, nine inception modules and the stride-2 poolings between them; output stride 32. As in
    every FCN the first convolution is padded by 100 (the classifier pads it by 3), so any input
    size survives the poolings; the weights are the classifier's. The
    classifier's average pooling, dropout and loss3/classifier are not part of it (section 4.1 of
    the paper discards the pooling; the classifier becomes FCN-GoogLeNet's score layer)."""

    def __init__(self, in_channels: int = 3, stem: Sequence[int] = GOOGLENET_STEM,
                 inceptions: Sequence[Sequence[int]] = INCEPTION_WIDTHS) -> None:
        c1, c2r, c2 = stem
        layers: list[Layer] = [
            ("conv1", Stage([conv("7x7_s2", in_channels, c1, 7, stride=2, pad=FIRST_PAD), relu("relu_7x7")])),
            ("pool1", Stage([max_pool("3x3_s2", 3, 2), lrn("norm1")])),
            ("conv2", Stage([conv("3x3_reduce", c1, c2r, 1), relu("relu_3x3_reduce"),
                             conv("3x3", c2r, c2, 3, pad=1), relu("relu_3x3"), lrn("norm2")])),
            ("pool2", Stage([max_pool("3x3_s2", 3, 2)])),
        ]
        channels = c2
        for key, widths in zip(INCEPTION_KEYS, inceptions, strict=True):
            module = Inception(channels, widths)
            layers.append((f"inception_{key}", module))
            channels = module.out_channels
            if key in GOOGLENET_POOL_AFTER:
                layers.append((GOOGLENET_POOL_AFTER[key], Stage([max_pool("3x3_s2", 3, 2)])))
        super().__init__(layers, in_channels)
        self.out_channels = channels
