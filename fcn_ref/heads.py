"""FCN score heads: score the features, upsample, fuse the pool4/pool3 skips, crop to the input.

One head class covers FCN-32s, -16s and -8s (the stride is how many skips it fuses), with the layer
names as data: the heavy nets' names (``score_fr``, ``upscore2``, ...), the same with a suffix for
SIFT Flow's two tasks (``score_fr_sem``), and the CVPR-era names (``score-fr``, ``score2``, ...).

Every crop offset is computed here from coordinate maps (``convert.coord_map``) of the blobs being
aligned, as Caffe's ``coord_map.crop`` computed them when the nets were written: 19 for 32s,
5 and 27 for 16s, 5, 9 and 31 for 8s, 18 for AlexNet.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Collection

import torch
from torch import nn

from convert.coord_map import IDENTITY, CoordMap, compose, crop_offset_from_maps, deconv_map
from fcn_ref.blocks import ChannelScale, Crop, Upsample


def score_conv(in_channels: int, num_classes: int) -> nn.Conv2d:
    """A 1x1 scoring convolution starting at zero: the reference nets give score layers no filler,
    so Caffe fills them with its default constant 0. An untrained skip then adds exactly nothing."""
    conv = nn.Conv2d(in_channels, num_classes, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


@dataclass(frozen=True)
class HeadNames:
    """Caffe layer names of one head. Crops are named after the blob they crop, plus ``c``."""

    score_fr: str = "score_fr"
    upscore2: str = "upscore2"
    score_pool4: str = "score_pool4"
    upscore_pool4: str = "upscore_pool4"
    score_pool3: str = "score_pool3"
    final: dict[int, str] = field(default_factory=lambda: {32: "upscore", 16: "upscore16", 8: "upscore8"})
    score: str = "score"  # the final crop: the output blob
    scale_pool4: str = "scale_pool4"
    scale_pool3: str = "scale_pool3"
    learned: frozenset[str] = frozenset()  # deconvolutions trained rather than fixed bilinear

    def suffixed(self, suffix: str) -> "HeadNames":
        """Every name with ``suffix`` appended, as SIFT Flow's ``_sem`` / ``_geo`` heads."""
        add = lambda name: name + suffix  # noqa: E731
        return HeadNames(add(self.score_fr), add(self.upscore2), add(self.score_pool4),
                         add(self.upscore_pool4), add(self.score_pool3),
                         {k: add(v) for k, v in self.final.items()}, add(self.score),
                         add(self.scale_pool4), add(self.scale_pool3),
                         frozenset(add(n) for n in self.learned))


HEAVY_NAMES = HeadNames()
# The CVPR 2015 release (fcn-{32,16,8}s-pascal.caffemodel): score2 and score4 were learned, the last
# upsampling ("upsample") fixed; the crops are the blobs' names plus "c" as well (score-pool4c).
CVPR_NAMES = HeadNames(score_fr="score-fr", upscore2="score2", score_pool4="score-pool4",
                       upscore_pool4="score4", score_pool3="score-pool3",
                       final={32: "upsample", 16: "upsample", 8: "upsample"}, score="upscore",
                       learned=frozenset({"score2", "score4"}))


@dataclass(frozen=True)
class Features:
    """What a head reads from the trunk (pool4 and pool3 only when it fuses those skips)."""

    fc7: torch.Tensor | None
    pool4: torch.Tensor | None
    pool3: torch.Tensor | None


class ScoreHead:
    """The layers after ``drop7`` of an FCN-{32,16,8}s, registered on ``owner`` under Caffe names.

    ``stride`` 32 scores fc7 only; 16 adds the pool4 skip; 8 adds pool3. ``skip_scales`` (at-once)
    scales pool4 and pool3 before scoring them. ``bias`` names the deconvolutions that have a bias
    blob (only CVPR-era files). ``maps`` are the trunk's coordinate maps of fc7, pool4 and pool3.
    """

    def __init__(self, owner: nn.Module, *, num_classes: int, stride: int, channels: dict[str, int],
                 maps: dict[str, CoordMap], names: HeadNames = HEAVY_NAMES,
                 final_kernel: int | None = None, skip_scales: tuple[float, float] | None = None,
                 bias: Collection[str] = (), learn_upsampling: bool = False) -> None:
        if stride not in (32, 16, 8):
            raise ValueError(f"an FCN head has stride 32, 16 or 8, not {stride}")
        self.names = names
        self.stride = stride
        self.skip_scales = skip_scales is not None
        n = names

        def upsample(name: str, kernel: int, step: int) -> Upsample:
            learn = learn_upsampling or name in n.learned
            return Upsample(num_classes, kernel, step, bias=name in bias, learnable=learn)

        owner.add_module(n.score_fr, score_conv(channels["fc7"], num_classes))
        current = maps["fc7"]  # 1x1 convs and sums keep coordinates; deconvs and crops move them
        if stride <= 16:
            owner.add_module(n.upscore2, upsample(n.upscore2, 4, 2))
            current = compose(current, deconv_map(4, 2))
            current = self._skip(owner, "pool4", n.scale_pool4, n.score_pool4, channels, maps, current,
                                 num_classes, skip_scales[0] if skip_scales else None)
        if stride == 8:
            owner.add_module(n.upscore_pool4, upsample(n.upscore_pool4, 4, 2))
            current = compose(current, deconv_map(4, 2))
            current = self._skip(owner, "pool3", n.scale_pool3, n.score_pool3, channels, maps, current,
                                 num_classes, skip_scales[1] if skip_scales else None)
        kernel = final_kernel or 2 * stride
        owner.add_module(n.final[stride], upsample(n.final[stride], kernel, stride))
        current = compose(current, deconv_map(kernel, stride))
        owner.add_module(n.score, Crop(crop_offset_from_maps(current, IDENTITY)))

    @staticmethod
    def _skip(owner: nn.Module, pool: str, scale_name: str, score_name: str, channels: dict[str, int],
              maps: dict[str, CoordMap], upsampled: CoordMap, num_classes: int,
              scale: float | None) -> CoordMap:
        """Register [scale], score and crop for one skip; the fused blob keeps the upsampled map."""
        if scale is not None:
            owner.add_module(scale_name, ChannelScale(channels[pool], scale))
        owner.add_module(score_name, score_conv(channels[pool], num_classes))
        owner.add_module(score_name + "c", Crop(crop_offset_from_maps(maps[pool], upsampled)))
        return upsampled

    def crop_offsets(self, owner: nn.Module) -> dict[str, int]:
        """Offset of each crop layer, by Caffe name (what Caffe's coord_map wrote into the prototxt)."""
        n = self.names
        crops = [n.score_pool4 + "c"] if self.stride <= 16 else []
        crops += [n.score_pool3 + "c"] if self.stride == 8 else []
        return {name: owner._modules[name].offset for name in crops + [n.score]}

    def __call__(self, owner: nn.Module, feats: Features, data: torch.Tensor) -> torch.Tensor:
        """The score blob (N, K, H, W) for an input of ``data``'s spatial size."""
        m, n = owner._modules, self.names
        score = m[n.score_fr](feats.fc7)
        if self.stride <= 16:
            score = m[n.upscore2](score)
            score = score + self._score_skip(m, feats.pool4, n.scale_pool4, n.score_pool4, score)
        if self.stride == 8:
            score = m[n.upscore_pool4](score)
            score = score + self._score_skip(m, feats.pool3, n.scale_pool3, n.score_pool3, score)
        return m[n.score](m[n.final[self.stride]](score), data)

    def _score_skip(self, m: dict[str, nn.Module], pool: torch.Tensor, scale_name: str, score_name: str,
                    reference: torch.Tensor) -> torch.Tensor:
        if self.skip_scales:
            pool = m[scale_name](pool)
        return m[score_name + "c"](m[score_name](pool), reference)
