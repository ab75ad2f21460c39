"""Public Caffe deploy nets beyond the FCN zoo, written to the published structure by generators.

Each net is a function ``build(width, classes, input_shape) -> NetText``; NETS says where its
structure comes from, under which license, and the two variants the suite uses:
- ``full``: published widths and class count at the published deploy size (oracle tier: real
  Caffe writes random weights and every blob into a temporary folder);
- ``small``: the same layers at reduced width, committed under tests/fixtures/public-nets/.
Both are compared at the deploy size and at an odd size. Pure Python (no Caffe, no numpy needed
to describe a net), so the tests can read this table too. See README.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import alexnet, colorization, densenet, dilation, googlenet, hed, mobilenet, nin, openpose, resnet, squeezenet
from .layers import Width
from .prototxt import NetText


TOLERANCE = 1e-5  # the house parity bound
# A floor is Caffe's distance from a float64 run of this project's runtime: a runtime bug would
# inflate it, so floors are measured once, committed, reviewed, and never allowed this large.
MAX_FLOOR = 1e-3


@dataclass(frozen=True)
class Variant:
    """Widths, class count and the two input shapes (N, C, H, W) a net is checked at."""

    width: Width
    classes: int
    deploy: tuple[int, int, int, int]
    odd: tuple[int, int, int, int]
    floor: float = 0.0  # Caffe's fp32 distance from float64 (tools/public_net_floors.py), if above 5e-6
    waits_for: str = ""  # a runtime change not landed yet: the variant's tests skip with this reason

    def __post_init__(self) -> None:
        assert 0 <= self.floor < MAX_FLOOR, f"floor {self.floor} is a bug, not rounding"

    @property
    def tolerance(self) -> float:
        """Every blob within this of Caffe (max |ours - Caffe| / max |Caffe|): the house 1e-5, or
        twice the variant's fp32 floor where that is larger."""
        return max(TOLERANCE, 2 * self.floor)


@dataclass(frozen=True)
class PublicNet:
    name: str
    family: str
    build: Callable[[Width, int, tuple[int, ...]], NetText]
    source: str  # repository@commit and path of the prototxt the generator follows
    license: str
    full: Variant
    small: Variant

    def net(self, variant: str) -> NetText:
        v = getattr(self, variant)
        return self.build(v.width, v.classes, v.deploy)


FULL = Width(1.0)
NETS: dict[str, PublicNet] = {n.name: n for n in (
    PublicNet("alexnet", "ILSVRC classifier, LRN + grouped convs + fc", alexnet.build,
              "BVLC/caffe@9b89154 models/bvlc_alexnet/deploy.prototxt", "unrestricted (BVLC model zoo)",
              Variant(FULL, 1000, (10, 3, 227, 227), (1, 3, 229, 230)),
              Variant(Width(1 / 8, fc_factor=1 / 64), 10, (2, 3, 67, 67), (1, 3, 69, 70))),
    PublicNet("googlenet", "inception modules", googlenet.build,
              "BVLC/caffe@9b89154 models/bvlc_googlenet/deploy.prototxt", "unrestricted (BVLC model zoo)",
              Variant(FULL, 1000, (10, 3, 224, 224), (1, 3, 225, 226)),
              Variant(Width(1 / 16), 10, (2, 3, 224, 224), (1, 3, 225, 226))),
    PublicNet("resnet50", "residual, BatchNorm + Scale", resnet.build,
              "KaimingHe/deep-residual-networks@a7026cb prototxt/ResNet-50-deploy.prototxt", "MIT",
              Variant(FULL, 1000, (1, 3, 224, 224), (1, 3, 225, 226), floor=8.0e-5),
              Variant(Width(1 / 16), 10, (1, 3, 224, 224), (1, 3, 225, 226), floor=1.7e-5)),
    PublicNet("squeezenet11", "fire modules, global pooling", squeezenet.build,
              "forresti/SqueezeNet@51147dc SqueezeNet_v1.1/deploy.prototxt", "BSD-2",
              Variant(FULL, 1000, (10, 3, 227, 227), (1, 3, 241, 199)),
              Variant(Width(1 / 4), 10, (1, 3, 227, 227), (1, 3, 241, 199))),
    PublicNet("mobilenet", "depthwise separable (group = channels)", mobilenet.build,
              "shicai/MobileNet-Caffe@a0b0c46 mobilenet_deploy.prototxt", "BSD-3",
              Variant(FULL, 1000, (1, 3, 224, 224), (1, 3, 199, 243), floor=2.8e-5),
              Variant(Width(1 / 8), 10, (1, 3, 224, 224), (1, 3, 199, 243), floor=1.9e-5)),
    PublicNet("densenet121", "dense concatenation, fork ceil_mode: false", densenet.build,
              "shicai/DenseNet-Caffe@d47f7b7 DenseNet_121.prototxt", "none stated (no LICENSE file)",
              Variant(FULL, 1000, (1, 3, 224, 224), (1, 3, 211, 237), floor=1.3e-5),
              Variant(Width(1 / 16), 10, (1, 3, 224, 224), (1, 3, 211, 237), floor=1.4e-5)),
    PublicNet("nin", "network in network (1x1 mlpconv, no fc)", nin.build,
              "Caffe Model Zoo gist mavenlin/d802a5849de39225bcc6 (NIN ImageNet)", "none stated (only the structure is used)",
              Variant(FULL, 1000, (1, 3, 224, 224), (1, 3, 239, 251)),
              Variant(Width(1 / 16), 10, (1, 3, 224, 224), (1, 3, 239, 251))),
    PublicNet("hed", "edge detection: side outputs, Crop without offset, fixed deconv", hed.build,
              "s9xie/hed@a2ad410 examples/hed/deploy.prototxt", "Caffe fork; the prototxt carries no license",
              Variant(FULL, 1, (1, 3, 500, 500), (1, 3, 321, 467)),
              Variant(Width(1 / 16), 1, (1, 3, 500, 500), (1, 3, 321, 467))),
    PublicNet("colorization", "dilated convs, BatchNorm without Scale, deconv, softmax", colorization.build,
              "richzhang/colorization@4aa459f models/colorization_deploy_v2.prototxt", "not checked (only the structure is used)",
              Variant(FULL, 313, (1, 1, 224, 224), (1, 1, 177, 253), floor=3.6e-5),
              Variant(Width(1 / 16), 32, (1, 1, 224, 224), (1, 1, 177, 253), floor=1.8e-5)),
    PublicNet("openpose", "pose: six two-branch stages joined by Concat", openpose.build,
              "CMU-Perceptual-Computing-Lab/openpose@3d2c0e2 models/pose/coco/pose_deploy_linevec.prototxt",
              "academic, non-commercial (only the structure is used)",
              Variant(FULL, 0, (1, 3, 368, 368), (1, 3, 197, 331)),
              Variant(Width(1 / 32), 0, (1, 3, 368, 368), (1, 3, 197, 331), floor=3.7e-5)),
    PublicNet("dilation8", "dilated segmentation, unpadded VGG front end + context module", dilation.build,
              "fyu/dilation@0f10574 models/dilation8_pascal_voc_deploy.prototxt", "MIT",
              Variant(FULL, 21, (1, 3, 900, 900), (1, 3, 517, 611)),
              Variant(Width(1 / 16, fc_factor=1 / 128), 2, (1, 3, 900, 900), (1, 3, 517, 611))),
)}
