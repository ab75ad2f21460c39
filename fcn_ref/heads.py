"""FCN score heads, one class per figure of the paper: score fc7, upsample, fuse skips, crop.

Each head is built against a trunk (``fcn_ref.trunks``), whose coordinate maps give every crop
offset: 19 for 32s, 5 and 27 for 16s, 5, 9 and 31 for 8s, 18 for AlexNet, as Caffe's
``coord_map.crop`` computed them when the nets were written. Children are named like the heavy
nets' Caffe layers; ``fcn_ref.caffe_names`` maps them to each era's file names.

A head reads only ``trunk.channels`` and ``trunk.maps`` (by blob name) when built, and the blobs
dict the trunk returns when run: any trunk with those (not only a chain of layers) fits.

``learned`` names the upsamplings that train (the CVPR nets' ``upscore2`` / ``upscore_pool4``, or
all of them with ``learn_upsampling``); ``biased`` those that have a bias blob (CVPR files only).
"""
from __future__ import annotations

from typing import Collection

import torch
from torch import nn

from convert.coord_map import IDENTITY, CoordMap, compose
from fcn_ref.blocks import Crop, Skip, Upsample, score_conv
from fcn_ref.trunks import Trunk

ALL = "*"  # in ``learned``: every upsampling of the head learns


class _Head(nn.Module):
    """What the heads share: the class count and how to make an upsampling layer."""

    def __init__(self, num_classes: int, learned: Collection[str], biased: Collection[str]) -> None:
        super().__init__()
        self._settings = (num_classes, frozenset(learned), frozenset(biased))

    def _upsample(self, name: str, kernel: int, stride: int, at: CoordMap) -> tuple[Upsample, CoordMap]:
        """A bilinear upsampling layer named ``name`` and the coordinate map of its output."""
        num_classes, learned, biased = self._settings
        layer = Upsample(num_classes, kernel, stride, bias=name in biased,
                         learnable=ALL in learned or name in learned)
        return layer, compose(at, layer.coord_map)


class Head32s(_Head):
    """FCN-32s: score_fr -> upscore (x32; AlexNet's kernel is 63) -> crop to the input."""

    def __init__(self, trunk: Trunk, num_classes: int, *, kernel: int = 64, learned: Collection[str] = (),
                 biased: Collection[str] = ()) -> None:
        super().__init__(num_classes, learned, biased)
        self.score_fr = score_conv(trunk.channels["fc7"], num_classes)
        self.upscore, at = self._upsample("upscore", kernel, 32, trunk.maps["fc7"])
        self.crop = Crop.aligning(at, IDENTITY)

    def forward(self, blobs: dict[str, torch.Tensor], data: torch.Tensor) -> torch.Tensor:
        return self.crop(self.upscore(self.score_fr(blobs["fc7"])), data)


class Head16s(_Head):
    """FCN-16s: score_fr -> upscore2 -> + crop(score_pool4) -> upscore16 -> crop to the input."""

    def __init__(self, trunk: Trunk, num_classes: int, *, learned: Collection[str] = (),
                 biased: Collection[str] = ()) -> None:
        super().__init__(num_classes, learned, biased)
        self.score_fr = score_conv(trunk.channels["fc7"], num_classes)
        self.upscore2, at = self._upsample("upscore2", 4, 2, trunk.maps["fc7"])
        self.skip_pool4 = Skip(trunk.channels["pool4"], num_classes, trunk.maps["pool4"], at)
        self.upscore16, at = self._upsample("upscore16", 32, 16, at)
        self.crop = Crop.aligning(at, IDENTITY)

    def forward(self, blobs: dict[str, torch.Tensor], data: torch.Tensor) -> torch.Tensor:
        score = self.upscore2(self.score_fr(blobs["fc7"]))
        score = self.skip_pool4(score, blobs["pool4"])
        return self.crop(self.upscore16(score), data)


class Head8s(_Head):
    """FCN-8s: score_fr -> upscore2 -> + crop(score_pool4) -> upscore_pool4 -> + crop(score_pool3)
    -> upscore8 -> crop to the input. ``skip_scales`` (at-once) scale pool4 and pool3 first."""

    def __init__(self, trunk: Trunk, num_classes: int, *, skip_scales: tuple[float, float] | None = None,
                 learned: Collection[str] = (), biased: Collection[str] = ()) -> None:
        super().__init__(num_classes, learned, biased)
        scale4, scale3 = skip_scales or (None, None)
        self.score_fr = score_conv(trunk.channels["fc7"], num_classes)
        self.upscore2, at = self._upsample("upscore2", 4, 2, trunk.maps["fc7"])
        self.skip_pool4 = Skip(trunk.channels["pool4"], num_classes, trunk.maps["pool4"], at, scale4)
        self.upscore_pool4, at = self._upsample("upscore_pool4", 4, 2, at)
        self.skip_pool3 = Skip(trunk.channels["pool3"], num_classes, trunk.maps["pool3"], at, scale3)
        self.upscore8, at = self._upsample("upscore8", 16, 8, at)
        self.crop = Crop.aligning(at, IDENTITY)

    def forward(self, blobs: dict[str, torch.Tensor], data: torch.Tensor) -> torch.Tensor:
        score = self.upscore2(self.score_fr(blobs["fc7"]))
        score = self.upscore_pool4(self.skip_pool4(score, blobs["pool4"]))
        score = self.upscore8(self.skip_pool3(score, blobs["pool3"]))
        return self.crop(score, data)
