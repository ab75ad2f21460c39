"""Dilation8 (Yu & Koltun) as in fyu/dilation models/dilation8_pascal_voc_deploy.prototxt: a VGG16
front end without padding whose last pools are replaced by dilated convolutions (fc6: 7x7,
dilation 4), then the context module (dilations 1-16, first conv pad 33) and a Softmax."""
from __future__ import annotations

from .layers import Width, conv, dropout, pool, relu, softmax
from .prototxt import NetText

VGG = ((1, 64, 2, 1), (2, 128, 2, 1), (3, 256, 3, 1), (4, 512, 3, 1), (5, 512, 3, 2))
# context module: (name, outputs as a multiple of the classes, dilation, pad)
CONTEXT = (("ct_conv1_1", 2, 1, 33), ("ct_conv1_2", 2, 1, 0), ("ct_conv2_1", 4, 2, 0), ("ct_conv3_1", 8, 4, 0),
           ("ct_conv4_1", 16, 8, 0), ("ct_conv5_1", 32, 16, 0), ("ct_fc1", 32, 1, 0))


def build(w: Width, classes: int, shape: tuple[int, ...]) -> NetText:
    net = NetText("dilation8_pascal_voc")
    x = net.input("data", shape, "input_shape")
    for stage, width, convs, dilation in VGG:
        for i in range(1, convs + 1):
            x = relu(net, f"relu{stage}_{i}", conv(net, f"conv{stage}_{i}", x, w(width), 3, dilation=dilation))
        if stage < 4:
            x = pool(net, f"pool{stage}", x, kernel=2, stride=2)
    x = dropout(net, "drop6", relu(net, "relu6", conv(net, "fc6", x, w.fc(4096), 7, dilation=4)))
    x = dropout(net, "drop7", relu(net, "relu7", conv(net, "fc7", x, w.fc(4096), 1)))
    x = conv(net, "fc-final", x, classes, 1)
    for name, multiple, dilation, pad in CONTEXT:
        relu_name = "ct_fc1_relu" if name == "ct_fc1" else name.replace("conv", "relu")
        x = relu(net, relu_name, conv(net, name, x, multiple * classes, 3, pad=pad, dilation=dilation))
    softmax(net, "prob", conv(net, "ct_final", x, classes, 1))
    return net
