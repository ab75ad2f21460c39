"""The FCN model zoo as readable PyTorch modules whose state-dict keys are Caffe's layer names.

Every class is a trunk (``fcn_ref.trunks``) plus one or two score heads (``fcn_ref.heads``), with
the widths and class count as constructor arguments: the paper's values by default, smaller ones for
a reduced net with the same graph. ``architecture`` (name + kwargs) is what a converted file stores
and what ``fcn_ref.load`` rebuilds from; ``ARCHITECTURES`` maps each name to its class.
"""
from __future__ import annotations

import os
from typing import ClassVar, Sequence

import torch
from torch import nn

from convert.coord_map import IDENTITY, compose, crop_offset_from_maps, deconv_map
from fcn_ref.blocks import Crop, Upsample
from fcn_ref.heads import CVPR_NAMES, HEAVY_NAMES, Features, ScoreHead, score_conv
from fcn_ref.trunks import (ALEXNET_WIDTHS, FC_WIDTHS, VGG16_WIDTHS, Chain, Step, alexnet_steps,
                            vgg16_steps)


class FCN(nn.Module):
    """Base of the zoo: keeps the constructor's kwargs (the file's ``architecture``) and loading.

    Layers are registered on the model itself under their Caffe names; the trunk chains and score
    heads that build and run them are plain objects, not submodules, so no key gets a prefix.
    """

    arch_name: ClassVar[str] = ""
    input_names: ClassVar[tuple[str, ...]] = ("data",)
    output_names: ClassVar[tuple[str, ...]] = ("score",)

    def __init__(self, **kwargs) -> None:
        super().__init__()
        self.kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}

    @property
    def architecture(self) -> dict:
        """``{"name", "kwargs"}``: enough to rebuild this model (what ``recognize`` returns)."""
        return {"name": self.arch_name, "kwargs": dict(self.kwargs)}

    def crop_offsets(self) -> dict[str, int]:
        """Offset of every crop layer by Caffe name, as computed from the coordinate maps."""
        return {name: m.offset for name, m in self.named_children() if isinstance(m, Crop)}

    @classmethod
    def from_caffemodel(cls, weights: str | os.PathLike, prototxt: str | os.PathLike | None = None) -> "FCN":
        """Read a caffemodel (no Caffe needed), recognize its architecture, build and load this class."""
        from fcn_ref.loading import from_caffemodel

        return from_caffemodel(weights, prototxt, expected=cls)


class _VGGSkipFCN(FCN):
    """A VGG16 trunk and one score head of stride 32, 16 or 8 (VOC, PASCAL-Context, NYUD)."""

    stride: ClassVar[int] = 32
    names: ClassVar = HEAVY_NAMES
    skip_scales: ClassVar[tuple[float, float] | None] = None
    default_bias: ClassVar[tuple[str, ...]] = ()

    def __init__(self, num_classes: int = 21, in_channels: int = 3, widths: Sequence[int] = VGG16_WIDTHS,
                 fc_widths: Sequence[int] = FC_WIDTHS, learn_upsampling: bool = False) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, widths=widths, fc_widths=fc_widths)
        self._build(num_classes, in_channels, widths, fc_widths, learn_upsampling, self.default_bias)

    def _build(self, num_classes: int, in_channels: int, widths: Sequence[int], fc_widths: Sequence[int],
               learn_upsampling: bool, deconv_bias: Sequence[str]) -> None:
        self.trunk = Chain(self, self._trunk_steps(in_channels, widths, fc_widths))
        channels = {"fc7": fc_widths[1], "pool4": widths[3], "pool3": widths[2]}
        maps = {name: self.trunk.maps[name] for name in channels}
        self.head = ScoreHead(self, num_classes=num_classes, stride=self.stride, channels=channels, maps=maps,
                              names=self.names, skip_scales=self.skip_scales, bias=deconv_bias,
                              learn_upsampling=learn_upsampling)

    def _trunk_steps(self, in_channels: int, widths: Sequence[int], fc_widths: Sequence[int]) -> list[Step]:
        return vgg16_steps(in_channels, widths, fc_widths)

    def features(self, x: torch.Tensor) -> Features:
        out = self.trunk.run(self, x, taps=("pool3", "pool4"))
        return Features(out["out"], out.get("pool4"), out.get("pool3"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self, self.features(x), x)


class FCN32s(_VGGSkipFCN):
    """FCN-32s (voc-fcn32s; also PASCAL-Context with 60 classes, NYUD color or HHA with 40)."""

    arch_name = "fcn32s"
    stride = 32


class FCN16s(_VGGSkipFCN):
    """FCN-16s: FCN-32s plus the pool4 skip (crop offsets 5 and 27)."""

    arch_name = "fcn16s"
    stride = 16


class FCN8s(_VGGSkipFCN):
    """FCN-8s: pool4 and pool3 skips (crop offsets 5, 9 and 31). ``voc-fcn8s/deploy.prototxt``."""

    arch_name = "fcn8s"
    stride = 8


class FCN8sAtOnce(_VGGSkipFCN):
    """FCN-8s trained in one stage: pool4 and pool3 are scaled by 0.01 and 0.0001 before scoring.

    The scales are Scale layers with their own blobs (shape (C,)), loaded from the file like weights.
    """

    arch_name = "fcn8s-atonce"
    stride = 8
    skip_scales = (0.01, 0.0001)


class CVPRFCN32s(_VGGSkipFCN):
    """The CVPR 2015 FCN-32s (fcn-32s-pascal): ``score-fr`` and a fixed ``upsample`` with a bias blob."""

    arch_name = "cvpr-fcn32s"
    stride = 32
    names = CVPR_NAMES
    default_bias = ("upsample",)

    def __init__(self, num_classes: int = 21, in_channels: int = 3, widths: Sequence[int] = VGG16_WIDTHS,
                 fc_widths: Sequence[int] = FC_WIDTHS, learn_upsampling: bool = False,
                 deconv_bias: Sequence[str] | None = None) -> None:
        """``deconv_bias``: the deconvolutions that have a bias blob in the file (read off it)."""
        bias = tuple(self.default_bias if deconv_bias is None else deconv_bias)
        FCN.__init__(self, num_classes=num_classes, in_channels=in_channels, widths=widths, fc_widths=fc_widths,
                     deconv_bias=bias)
        self._build(num_classes, in_channels, widths, fc_widths, learn_upsampling, bias)


class CVPRFCN16s(CVPRFCN32s):
    """The CVPR 2015 FCN-16s (fcn-16s-pascal): learned ``score2`` with bias, fixed ``upsample``."""

    arch_name = "cvpr-fcn16s"
    stride = 16
    default_bias = ("score2",)


class CVPRFCN8s(CVPRFCN32s):
    """The CVPR 2015 FCN-8s (fcn-8s-pascal, 62.7 mean IU on VOC2011 test): learned ``score2`` (bias)
    and ``score4`` (no bias), fixed ``upsample`` 16/8."""

    arch_name = "cvpr-fcn8s"
    stride = 8
    default_bias = ("score2",)


class FCNAlexNet(FCN):
    """FCN-AlexNet (voc-fcn-alexnet): CaffeNet trunk with grouped convs and LRN, one 63/32 deconv."""

    arch_name = "fcn-alexnet"

    def __init__(self, num_classes: int = 21, in_channels: int = 3, widths: Sequence[int] = ALEXNET_WIDTHS,
                 fc_widths: Sequence[int] = FC_WIDTHS, learn_upsampling: bool = False) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, widths=widths, fc_widths=fc_widths)
        self.trunk = Chain(self, alexnet_steps(in_channels, widths, fc_widths))
        self.head = ScoreHead(self, num_classes=num_classes, stride=32, channels={"fc7": fc_widths[1]},
                              maps={"fc7": self.trunk.maps["fc7"]}, final_kernel=63,
                              learn_upsampling=learn_upsampling)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self, Features(self.trunk.run(self, x)["out"], None, None), x)


class _SIFTFlowFCN(_VGGSkipFCN):
    """SIFT Flow multi-task FCN: one trunk, a semantic head (33) and a geometric head (3).

    Returns ``{"score_sem": ..., "score_geo": ...}``; each head's layers carry the suffix
    ``_sem`` / ``_geo`` (``score_fr_sem``, ``upscore2_geo``, ...), as in siftflow-fcn*s/net.py.
    """

    output_names = ("score_sem", "score_geo")

    def __init__(self, num_classes: int = 33, num_geometric: int = 3, in_channels: int = 3,
                 widths: Sequence[int] = VGG16_WIDTHS, fc_widths: Sequence[int] = FC_WIDTHS,
                 learn_upsampling: bool = False) -> None:
        FCN.__init__(self, num_classes=num_classes, num_geometric=num_geometric, in_channels=in_channels,
                     widths=widths, fc_widths=fc_widths)
        self.trunk = Chain(self, vgg16_steps(in_channels, widths, fc_widths))
        channels = {"fc7": fc_widths[1], "pool4": widths[3], "pool3": widths[2]}
        maps = {name: self.trunk.maps[name] for name in channels}
        self.heads = {
            task: ScoreHead(self, num_classes=k, stride=self.stride, channels=channels, maps=maps,
                            names=HEAVY_NAMES.suffixed(f"_{task}"), learn_upsampling=learn_upsampling)
            for task, k in (("sem", num_classes), ("geo", num_geometric))
        }

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        feats = self.features(x)
        return {f"score_{task}": head(self, feats, x) for task, head in self.heads.items()}


class SIFTFlowFCN32s(_SIFTFlowFCN):
    arch_name = "siftflow-fcn32s"
    stride = 32


class SIFTFlowFCN16s(_SIFTFlowFCN):
    arch_name = "siftflow-fcn16s"
    stride = 16


class SIFTFlowFCN8s(_SIFTFlowFCN):
    arch_name = "siftflow-fcn8s"
    stride = 8


class NYUDColorDepthFCN32s(FCN32s):
    """NYUDv2 FCN-32s on color + log depth: a 4-channel first conv ``conv1_1_bgrd`` (Concat input).

    ``forward(color, depth)`` concatenates as the net's Concat layer does; a single 4-channel tensor
    is accepted too.
    """

    arch_name = "nyud-fcn32s-color-d"
    input_names = ("color", "depth")

    def __init__(self, num_classes: int = 40, in_channels: int = 4, widths: Sequence[int] = VGG16_WIDTHS,
                 fc_widths: Sequence[int] = FC_WIDTHS, learn_upsampling: bool = False) -> None:
        super().__init__(num_classes, in_channels, widths, fc_widths, learn_upsampling)

    def _trunk_steps(self, in_channels: int, widths: Sequence[int], fc_widths: Sequence[int]) -> list[Step]:
        return vgg16_steps(in_channels, widths, fc_widths, first_conv="conv1_1_bgrd")

    def forward(self, color: torch.Tensor, depth: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        x = color if depth is None else torch.cat([color, depth], dim=1)
        return super().forward(x)


class NYUDColorHHAFCN32s(FCN):
    """NYUDv2 late fusion: two VGG16 FCN-32s trunks (suffixed ``color`` and ``hha``, as in
    nyud-fcn32s-color-hha/net.py: ``conv1_1color``, ``score_frhha``), scores averaged with Eltwise
    coefficients 0.5 / 0.5, then one fixed 64/32 ``upscore``; cropped against the color input.
    """

    arch_name = "nyud-fcn32s-color-hha"
    input_names = ("color", "hha")
    MODALITIES = ("color", "hha")
    FUSE_COEFFS = (0.5, 0.5)

    def __init__(self, num_classes: int = 40, widths: Sequence[int] = VGG16_WIDTHS,
                 fc_widths: Sequence[int] = FC_WIDTHS, learn_upsampling: bool = False) -> None:
        super().__init__(num_classes=num_classes, widths=widths, fc_widths=fc_widths)
        self.trunks = {}
        for modality in self.MODALITIES:
            steps = vgg16_steps(3, widths, fc_widths, suffix=modality)
            steps.append(Step(f"score_fr{modality}", score_conv(fc_widths[1], num_classes)))
            self.trunks[modality] = Chain(self, steps)
        self.upscore = Upsample(num_classes, 64, 32, learnable=learn_upsampling)
        upscored = compose(self.trunks["color"].output_map, deconv_map(64, 32))
        self.score = Crop(crop_offset_from_maps(upscored, IDENTITY))

    def forward(self, color: torch.Tensor, hha: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        scores = [self.trunks[m].run(self, x)["out"] for m, x in zip(self.MODALITIES, (color, hha))]
        fused = self.FUSE_COEFFS[0] * scores[0] + self.FUSE_COEFFS[1] * scores[1]
        return self.score(self.upscore(fused), color)


ARCHITECTURES: dict[str, type[FCN]] = {
    cls.arch_name: cls
    for cls in (FCN32s, FCN16s, FCN8s, FCN8sAtOnce, FCNAlexNet, SIFTFlowFCN32s, SIFTFlowFCN16s,
                SIFTFlowFCN8s, NYUDColorDepthFCN32s, NYUDColorHHAFCN32s, CVPRFCN32s, CVPRFCN16s, CVPRFCN8s)
}


def build(architecture: dict) -> FCN:
    """A model from a file's ``{"name", "kwargs"}`` (unknown names raise KeyError)."""
    return ARCHITECTURES[architecture["name"]](**architecture.get("kwargs", {}))
