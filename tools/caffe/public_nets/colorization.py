"""Zhang et al. colorization as in richzhang/colorization models/colorization_deploy_v2.prototxt:
strided and dilated convolutions, BatchNorm without Scale, a Deconvolution, a 313-way Softmax
over a rescaled score, a 1x1 decoding conv and a Silence layer (the net has no output blob)."""
from __future__ import annotations

from .layers import Width, batch_norm, conv, relu, scale, softmax
from .prototxt import NetText

# block -> convs as (outputs, stride, dilation); a BatchNorm ends blocks 1-7.
BLOCKS = {
    1: ((64, 1, 1), (64, 2, 1)), 2: ((128, 1, 1), (128, 2, 1)), 3: ((256, 1, 1), (256, 1, 1), (256, 2, 1)),
    4: ((512, 1, 1),) * 3, 5: ((512, 1, 2),) * 3, 6: ((512, 1, 2),) * 3, 7: ((512, 1, 1),) * 3,
}


def build(w: Width, classes: int, shape: tuple[int, ...]) -> NetText:
    net = NetText("LtoAB")
    x = net.input("data_l", shape, "layer")
    for block, convs in BLOCKS.items():
        for i, (n, stride, dilation) in enumerate(convs, start=1):
            name = f"conv{block}_{i}"
            layer = "bw_conv1_1" if name == "conv1_1" else name
            x = relu(net, f"relu{block}_{i}", conv(net, layer, x, w(n), 3, stride=stride, pad=dilation,
                                                 dilation=dilation, top=name))
        x = batch_norm(net, f"{name}norm", x, f"{name}norm", params=True)
    x = relu(net, "relu8_1", conv(net, "conv8_1", x, w(256), 4, stride=2, pad=1, deconv=True))
    x = relu(net, "relu8_2", conv(net, "conv8_2", x, w(256), 3, pad=1))
    x = relu(net, "relu8_3", conv(net, "conv8_3", x, w(256), 3, pad=1))
    x = scale(net, "conv8_313_rh", conv(net, "conv8_313", x, classes, 1), bias=False, top="conv8_313_rh")
    x = conv(net, "class8_ab", softmax(net, "class8_313_rh", x), 2, 1)
    net.layer("Silence", "Silence", [x], [])
    return net
