"""The FCN model zoo as PyTorch modules: a trunk that returns the blobs a head taps, and a head.

``print(FCN8s())`` shows the structure: ``trunk`` (VGG16's Caffe layers in order) and ``head``
(``Head8s``: score_fr, upscore2, skip_pool4, upscore_pool4, skip_pool3, upscore8, crop), each skip
a ``Skip`` (score, crop, fuse). Widths and class count come from the model's config
(``fcn_ref.configs``); ``architecture`` (name + config) is what a converted file stores and
``build`` rebuilds from. State-dict keys are module paths; ``fcn_ref.caffe_names`` maps them to
the Caffe layer names of the files.
"""
from __future__ import annotations

import os
from typing import Any, ClassVar

import torch
from torch import nn

from convert.coord_map import IDENTITY, compose
from convert.modules import Concat
from fcn_ref.blocks import Crop, Sum, Upsample, score_conv
from fcn_ref.configs import (AlexNetConfig, CVPRConfig, FCNConfig, GoogLeNetConfig, NYUDColorDepthConfig,
                             NYUDColorHHAConfig, SIFTFlowConfig, model_config)
from fcn_ref.heads import ALL, Head8s, Head16s, Head32s
from fcn_ref.trunks import VGG16, AlexNet, GoogLeNet


class FCN(nn.Module):
    """Base of the zoo: the config, the Caffe naming era, and loading.

    A model class sets ``arch_name`` (the name a file stores) and, where its fields differ from
    ``FCNConfig``'s, ``config_family``; it gets its own config class, ``config_class``
    (``FCN8sConfig``). The CVPR 2015 nets set ``naming = "cvpr"``. ``FCN8s(config)`` or
    ``FCN8s(**fields)`` build the same model.
    """

    arch_name: ClassVar[str] = ""
    config_family: ClassVar[type[FCNConfig]] = FCNConfig
    config_class: ClassVar[type[FCNConfig]] = FCNConfig
    naming: ClassVar[str] = "heavy"  # which naming of fcn_ref.caffe_names the files use
    input_names: ClassVar[tuple[str, ...]] = ("data",)
    output_names: ClassVar[tuple[str, ...]] = ("score",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "arch_name" in cls.__dict__:  # a concrete model: its own config class, named for it
            cls.config_class = model_config(f"{cls.__name__}Config", cls.config_family, cls.arch_name)

    def __init__(self, config: FCNConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        if config is not None and kwargs:
            raise TypeError("give a config or keyword arguments, not both")
        if config is not None and type(config) is not self.config_class:
            raise TypeError(f"{type(self).__name__} takes a {self.config_class.__name__}, not {type(config).__name__}")
        self.config = config if config is not None else self.config_class(**kwargs)

    @property
    def architecture(self) -> dict:
        """``{"name", "kwargs"}``: what a converted file stores to rebuild this model."""
        return {"name": self.arch_name, "kwargs": self.config.as_kwargs()}

    def input_channels(self) -> tuple[int, ...]:
        """Channels of each input, in ``input_names`` order."""
        return (self.config.in_channels,)

    @property
    def kwargs(self) -> dict:
        return self.architecture["kwargs"]

    def crop_offsets(self) -> dict[str, int]:
        """Offset of every crop by Caffe layer name, in the net's order, from the coordinate maps."""
        from fcn_ref.caffe_names import caffe_layer_names

        names = caffe_layer_names(self)
        return {names[path]: m.offset for path, m in self.named_modules() if isinstance(m, Crop)}

    @classmethod
    def from_caffemodel(cls, weights: str | os.PathLike, prototxt: str | os.PathLike | None = None) -> "FCN":
        """Read a caffemodel (no Caffe needed), recognize its architecture, build and load this class."""
        from fcn_ref.loading import from_caffemodel

        return from_caffemodel(weights, prototxt, expected=cls)


class FCN32s(FCN):
    """FCN-32s (voc-fcn32s; also PASCAL-Context with 60 classes, NYUD color or HHA with 40)."""

    arch_name = "fcn32s"

    def __init__(self, config: FCNConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        c = self.config
        self.trunk = VGG16(c.in_channels, c.widths, c.fc_widths, taps=())
        self.head = Head32s(self.trunk, c.num_classes, learned=[ALL] if c.learn_upsampling else [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x), x)


class FCN16s(FCN):
    """FCN-16s: FCN-32s plus the pool4 skip (crop offsets 5 and 27)."""

    arch_name = "fcn16s"

    def __init__(self, config: FCNConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        c = self.config
        self.trunk = VGG16(c.in_channels, c.widths, c.fc_widths, taps=("pool4",))
        self.head = Head16s(self.trunk, c.num_classes, learned=[ALL] if c.learn_upsampling else [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x), x)


class FCN8s(FCN):
    """FCN-8s: pool4 and pool3 skips (crop offsets 5, 9 and 31). ``voc-fcn8s/deploy.prototxt``."""

    arch_name = "fcn8s"
    skip_scales: ClassVar[tuple[float, float] | None] = None

    def __init__(self, config: FCNConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        c = self.config
        self.trunk = VGG16(c.in_channels, c.widths, c.fc_widths, taps=("pool3", "pool4"))
        self.head = Head8s(self.trunk, c.num_classes, skip_scales=self.skip_scales,
                           learned=[ALL] if c.learn_upsampling else [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x), x)


class FCN8sAtOnce(FCN8s):
    """FCN-8s trained in one stage: pool4 and pool3 are scaled by 0.01 and 0.0001 before scoring.

    The scales are Scale layers with their own blobs (shape (C,)), loaded from the file like weights.
    """

    arch_name = "fcn8s-atonce"
    skip_scales = (0.01, 0.0001)


class FCNAlexNet(FCN):
    """FCN-AlexNet (voc-fcn-alexnet): CaffeNet trunk with grouped convs and LRN, one 63/32 deconv."""

    arch_name = "fcn-alexnet"
    config_family = AlexNetConfig

    def __init__(self, config: FCNConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        c = self.config
        self.trunk = AlexNet(c.in_channels, c.widths, c.fc_widths)
        self.head = Head32s(self.trunk, c.num_classes, kernel=63, learned=[ALL] if c.learn_upsampling else [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x), x)


class FCNGoogLeNet(FCN):
    """FCN-GoogLeNet (Table 1 of the paper; never released): BVLC GoogLeNet up to
    inception_5b/output without the final average pooling (section 4.1), a 1x1 ``score_fr``,
    a fixed bilinear 63/32 ``upscore`` and a crop to the input (offset 98 from the coordinate maps,
    conv1 padded by 100 as in every FCN; a 64-wide kernel would leave the maps half a pixel apart,
    as for FCN-AlexNet).
    ``fcn_ref.surgery.fcn_from_classifier(googlenet, "fcn-googlenet")`` makes one from the
    classifier. Caffe layer names: ``conv1/7x7_s2``, ``inception_3a/1x1``, ... (``naming``)."""

    arch_name = "fcn-googlenet"
    config_family = GoogLeNetConfig
    naming = "googlenet"
    UPSAMPLE_KERNEL = 63

    def __init__(self, config: FCNConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        c = self.config
        self.trunk = GoogLeNet(c.in_channels, c.widths, c.inception_widths)
        self.score_fr = score_conv(self.trunk.out_channels, c.num_classes)
        self.upscore = Upsample(c.num_classes, self.UPSAMPLE_KERNEL, 32, learnable=c.learn_upsampling)
        self.crop = Crop.aligning(compose(self.trunk.maps[self.trunk.output], self.upscore.coord_map), IDENTITY)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.crop(self.upscore(self.score_fr(self.trunk(x)[self.trunk.output])), x)


class _CVPRFCN(FCN):
    """The CVPR 2015 nets: the same graphs with other names (``score-fr``, ``score2``, ``upsample``),
    learned ``score2``/``score4`` upsampling, and a bias blob on some deconvolutions."""

    config_family = CVPRConfig
    naming = "cvpr"
    head_class: ClassVar[type[nn.Module]] = Head32s
    taps: ClassVar[tuple[str, ...]] = ()
    default_bias: ClassVar[tuple[str, ...]] = ()  # Caffe names, as the released file has them

    def __init__(self, config: CVPRConfig | None = None, **kwargs: Any) -> None:
        from fcn_ref.caffe_names import head_layer_name

        super().__init__(config, **kwargs)
        c = self.config
        bias = self.default_bias if c.deconv_bias is None else c.deconv_bias
        ups = ("upscore2", "upscore_pool4", "upscore", "upscore16", "upscore8")
        biased = [up for up in ups if head_layer_name(up, "cvpr") in bias]
        learned = [ALL] if c.learn_upsampling else ["upscore2", "upscore_pool4"]
        self.trunk = VGG16(c.in_channels, c.widths, c.fc_widths, taps=self.taps)
        self.head = self.head_class(self.trunk, c.num_classes, learned=learned, biased=biased)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x), x)


class CVPRFCN32s(_CVPRFCN):
    """The CVPR 2015 FCN-32s (fcn-32s-pascal): ``score-fr`` and a fixed ``upsample`` with a bias blob."""

    arch_name = "cvpr-fcn32s"
    default_bias = ("upsample",)


class CVPRFCN16s(_CVPRFCN):
    """The CVPR 2015 FCN-16s (fcn-16s-pascal): learned ``score2`` with bias, fixed ``upsample``."""

    arch_name = "cvpr-fcn16s"
    head_class = Head16s
    taps = ("pool4",)
    default_bias = ("score2",)


class CVPRFCN8s(_CVPRFCN):
    """The CVPR 2015 FCN-8s (fcn-8s-pascal, 62.7 mean IU on VOC2011 test): learned ``score2`` (bias)
    and ``score4`` (no bias), fixed ``upsample`` 16/8."""

    arch_name = "cvpr-fcn8s"
    head_class = Head8s
    taps = ("pool3", "pool4")
    default_bias = ("score2",)


class _SIFTFlowFCN(FCN):
    """SIFT Flow multi-task FCN: one trunk, a semantic head (33 classes) and a geometric head (3).

    Returns ``{"score_sem": ..., "score_geo": ...}``; each head's Caffe layers carry the suffix
    ``_sem`` / ``_geo`` (``score_fr_sem``, ``upscore2_geo``, ...), as in siftflow-fcn*s/net.py.
    """

    config_family = SIFTFlowConfig
    output_names = ("score_sem", "score_geo")
    head_class: ClassVar[type[nn.Module]] = Head32s
    taps: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: SIFTFlowConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        c = self.config
        learned = [ALL] if c.learn_upsampling else []
        self.trunk = VGG16(c.in_channels, c.widths, c.fc_widths, taps=self.taps)
        self.sem = self.head_class(self.trunk, c.num_classes, learned=learned)
        self.geo = self.head_class(self.trunk, c.num_geometric, learned=learned)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        blobs = self.trunk(x)
        return {"score_sem": self.sem(blobs, x), "score_geo": self.geo(blobs, x)}


class SIFTFlowFCN32s(_SIFTFlowFCN):
    arch_name = "siftflow-fcn32s"


class SIFTFlowFCN16s(_SIFTFlowFCN):
    arch_name = "siftflow-fcn16s"
    head_class = Head16s
    taps = ("pool4",)


class SIFTFlowFCN8s(_SIFTFlowFCN):
    arch_name = "siftflow-fcn8s"
    head_class = Head8s
    taps = ("pool3", "pool4")


class NYUDColorDepthFCN32s(FCN32s):
    """NYUDv2 FCN-32s on color + log depth: a 4-channel first conv ``conv1_1_bgrd`` (Concat input).

    ``forward(color, depth)`` concatenates as the net's Concat layer does; a single 4-channel tensor
    is accepted too.
    """

    arch_name = "nyud-fcn32s-color-d"
    config_family = NYUDColorDepthConfig
    input_names = ("color", "depth")

    def __init__(self, config: FCNConfig | None = None, **kwargs: Any) -> None:
        FCN.__init__(self, config, **kwargs)
        c = self.config
        self.concat = Concat(axis=1)
        self.trunk = VGG16(c.in_channels, c.widths, c.fc_widths, taps=(), first_conv="conv1_1_bgrd")
        self.head = Head32s(self.trunk, c.num_classes, learned=[ALL] if c.learn_upsampling else [])

    def input_channels(self) -> tuple[int, ...]:
        return (self.config.in_channels - 1, 1)

    def forward(self, color: torch.Tensor, depth: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        x = color if depth is None else self.concat(color, depth)
        return super().forward(x)


class ScoredTrunk(nn.Module):
    """A trunk and its own score_fr: one input modality of a late-fusion net."""

    def __init__(self, trunk: VGG16, num_classes: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.score_fr = score_conv(trunk.channels["fc7"], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score_fr(self.trunk(x)["fc7"])


class NYUDColorHHAFCN32s(FCN):
    """NYUDv2 late fusion: two VGG16 FCN-32s trunks (``color`` and ``hha``; their Caffe layers carry
    the suffix, as in nyud-fcn32s-color-hha/net.py: ``conv1_1color``, ``score_frhha``), scores
    averaged by an Eltwise with coefficients 0.5 / 0.5, then one fixed 64/32 ``upscore`` cropped
    against the color input.
    """

    arch_name = "nyud-fcn32s-color-hha"
    config_family = NYUDColorHHAConfig
    input_names = ("color", "hha")
    FUSE_COEFFS = (0.5, 0.5)

    def __init__(self, config: FCNConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        c = self.config
        self.color = ScoredTrunk(VGG16(c.in_channels, c.widths, c.fc_widths, taps=()), c.num_classes)
        self.hha = ScoredTrunk(VGG16(c.in_channels, c.widths, c.fc_widths, taps=()), c.num_classes)
        self.fuse = Sum(self.FUSE_COEFFS)
        self.upscore = Upsample(c.num_classes, 64, 32, learnable=c.learn_upsampling)
        self.crop = Crop.aligning(compose(self.color.trunk.maps["fc7"], self.upscore.coord_map), IDENTITY)

    def input_channels(self) -> tuple[int, ...]:
        return (self.config.in_channels, self.config.in_channels)

    def forward(self, color: torch.Tensor, hha: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.crop(self.upscore(self.fuse(self.color(color), self.hha(hha))), color)


ARCHITECTURES: dict[str, type[FCN]] = {
    cls.arch_name: cls
    for cls in (FCN32s, FCN16s, FCN8s, FCN8sAtOnce, FCNAlexNet, SIFTFlowFCN32s, SIFTFlowFCN16s,
                SIFTFlowFCN8s, NYUDColorDepthFCN32s, NYUDColorHHAFCN32s, CVPRFCN32s, CVPRFCN16s, CVPRFCN8s,
                FCNGoogLeNet)
}


def build(architecture: dict | FCNConfig) -> FCN:
    """A model from its config, or from a file's ``{"name", "kwargs"}`` (unknown names: KeyError)."""
    if isinstance(architecture, FCNConfig):
        return ARCHITECTURES[architecture.arch](architecture)
    cls = ARCHITECTURES[architecture["name"]]
    return cls(cls.config_class(**architecture.get("kwargs", {})))
