"""One config dataclass per model: every constructor argument, and nothing else.

A model is built from its config (``FCN8s(FCN8sConfig(num_classes=60))``, or the same fields as
keywords), keeps it as ``model.config``, and a converted file stores it as plain data
(``{"name": config.arch, "kwargs": config.as_kwargs()}``), from which ``fcn_ref.build`` makes the
same model again. Defaults are the paper's; smaller widths give a reduced net with the same graph.
The family classes below hold the fields; each model's own class (``FCN8s.config_class``, named
``FCN8sConfig``) is its family's under the model's name, so a config says which model it builds.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from fcn_ref.trunks import ALEXNET_WIDTHS, FC_WIDTHS, GOOGLENET_STEM, INCEPTION_WIDTHS, VGG16_WIDTHS


@dataclass(frozen=True)
class FCNConfig:
    """VGG16 FCN-32s/16s/8s (VOC; PASCAL-Context with 60 classes; NYUD color or HHA with 40)."""

    arch: ClassVar[str] = ""  # the architecture name a file stores (set by each model's config)
    num_classes: int = 21
    in_channels: int = 3
    widths: tuple[int, ...] = VGG16_WIDTHS  # output channels of conv1_x .. conv5_x
    fc_widths: tuple[int, ...] = FC_WIDTHS  # fc6, fc7
    learn_upsampling: bool = False  # train every upsampling (the heavy nets keep them bilinear)

    def __post_init__(self) -> None:
        for f in fields(self):  # lists from a file or a caller become tuples: configs compare equal
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))

    def as_kwargs(self) -> dict[str, Any]:
        """Plain data (lists, not tuples) for a converted file that ``torch.load`` opens safely."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class AlexNetConfig(FCNConfig):
    """FCN-AlexNet: CaffeNet widths."""

    widths: tuple[int, ...] = ALEXNET_WIDTHS


@dataclass(frozen=True)
class GoogLeNetConfig(FCNConfig):
    """FCN-GoogLeNet: ``widths`` are the stem's (conv1/7x7_s2, conv2/3x3_reduce, conv2/3x3),
    ``inception_widths`` the six widths of each inception module. GoogLeNet has no fully connected
    layer besides its classifier, so ``fc_widths`` (inherited) is unused."""

    widths: tuple[int, ...] = GOOGLENET_STEM
    fc_widths: tuple[int, ...] = ()
    inception_widths: tuple[tuple[int, ...], ...] = INCEPTION_WIDTHS

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "inception_widths", tuple(tuple(w) for w in self.inception_widths))

    def as_kwargs(self) -> dict[str, Any]:
        kwargs = super().as_kwargs()
        kwargs["inception_widths"] = [list(w) for w in self.inception_widths]
        return kwargs


@dataclass(frozen=True)
class SIFTFlowConfig(FCNConfig):
    """SIFT Flow: one trunk, 33 semantic and 3 geometric classes."""

    num_classes: int = 33
    num_geometric: int = 3


@dataclass(frozen=True)
class NYUDColorDepthConfig(FCNConfig):
    """NYUDv2 color + depth: 40 classes, 4 input channels (BGR and log depth)."""

    num_classes: int = 40
    in_channels: int = 4


@dataclass(frozen=True)
class NYUDColorHHAConfig(FCNConfig):
    """NYUDv2 color and HHA: two 3-channel trunks, 40 classes."""

    num_classes: int = 40


@dataclass(frozen=True)
class CVPRConfig(FCNConfig):
    """The CVPR 2015 nets. ``deconv_bias``: the Caffe layers among score2/score4/upsample that have a
    bias blob in the file (None: the class's default, as released)."""

    deconv_bias: tuple[str, ...] | None = None

    FILE_LAYOUT: ClassVar[tuple[str, ...]] = ("deconv_bias",)  # one file's blobs, not a training choice


@dataclass(frozen=True)
class CVPRFCN8sConfig(CVPRConfig):
    arch = "cvpr-fcn8s"


def model_config(name: str, family: type[FCNConfig], arch: str) -> type[FCNConfig]:
    """The family's config under one model's name (``FCN8sConfig``), so a config says which model
    it builds. ``fcn_ref.models.FCN`` makes one for every model class that names its architecture."""
    return type(name, (family,), {"arch": arch, "__module__": __name__, "__qualname__": name,
                                  "__doc__": f"Config of {arch} (the fields of {family.__name__})."})
