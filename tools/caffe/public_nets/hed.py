"""HED edge detection as in s9xie/hed examples/hed/deploy.prototxt: a VGG16 trunk (conv1_1 pad 35)
with five side outputs, each a 1x1 score, a fixed upsampling Deconvolution, a Crop against the
image (no offset: BVLC's Crop then uses 0) and a Sigmoid; the side scores are fused by a 1x1 conv.
The five Crop layers all share the name 'crop', as in the original."""
from __future__ import annotations

from .layers import Width, concat, conv, pool, relu, sigmoid
from .prototxt import CAFFE, NetText

VGG = ((1, 64, 2), (2, 128, 2), (3, 256, 3), (4, 512, 3), (5, 512, 3))
ENGINE = {"engine": CAFFE}


def build(w: Width, classes: int, shape: tuple[int, ...]) -> NetText:
    net = NetText("FCN")
    data = net.input("data", shape, "input_dim")
    x, sides = data, []
    for stage, width, convs in VGG:
        if stage > 1:
            x = pool(net, f"pool{stage - 1}", x, kernel=2, stride=2)
        for i in range(1, convs + 1):
            pad = 35 if (stage, i) == (1, 1) else 1
            x = relu(net, f"relu{stage}_{i}", conv(net, f"conv{stage}_{i}", x, w(width), 3, pad=pad, extra=ENGINE))
        sides.append(x)
    crops = []
    for stage, x in enumerate(sides, start=1):
        if stage == 1:
            score = conv(net, "score-dsn1", x, 1, 1, top="score-dsn1-up", extra=ENGINE)
        else:
            factor = 2 ** (stage - 1)
            score = conv(net, f"score-dsn{stage}", x, 1, 1, extra=ENGINE)
            score = conv(net, f"upsample_{factor}", score, 1, 2 * factor, stride=factor, top=f"score-dsn{stage}-up",
                         deconv=True, frozen=True)
        crop = net.layer("crop", "Crop", [score, data], [f"upscore-dsn{stage}"])
        sigmoid(net, f"sigmoid-dsn{stage}", crop)
        crops.append(crop)
    fused = concat(net, "concat", crops, top="concat-upscore", legacy_dim=True)
    sigmoid(net, "sigmoid-fuse", conv(net, "new-score-weighting", fused, 1, 1, top="upscore-fuse", extra=ENGINE))
    return net
