"""MobileNet v1 as in shicai/MobileNet-Caffe mobilenet_deploy.prototxt: depthwise 3x3
convolutions (group = channels) and pointwise 1x1 ones, each followed by BatchNorm + Scale + ReLU."""
from __future__ import annotations

from .layers import Width, bn_scale, conv, pool, relu, softmax
from .prototxt import AVE, CAFFE, NetText

# block -> (depthwise stride, pointwise outputs)
BLOCKS = {"2_1": (1, 64), "2_2": (2, 128), "3_1": (1, 128), "3_2": (2, 256), "4_1": (1, 256), "4_2": (2, 512),
          "5_1": (1, 512), "5_2": (1, 512), "5_3": (1, 512), "5_4": (1, 512), "5_5": (1, 512), "5_6": (2, 1024),
          "6": (1, 1024)}
EPS = 1e-5


def build(w: Width, classes: int, shape: tuple[int, ...]) -> NetText:
    net = NetText("MOBILENET")
    x = net.input("data", shape, "input_dim")
    x = conv(net, "conv1", x, w(32), 3, stride=2, pad=1, bias=False)
    x = relu(net, "relu1", bn_scale(net, "conv1/bn", "conv1/scale", x, eps=EPS))
    channels = w(32)
    for block, (stride, out) in BLOCKS.items():
        dw = conv(net, f"conv{block}/dw", x, channels, 3, stride=stride, pad=1, group=channels, bias=False,
                  extra={"engine": CAFFE})
        dw = relu(net, f"relu{block}/dw", bn_scale(net, f"conv{block}/dw/bn", f"conv{block}/dw/scale", dw, eps=EPS))
        channels = w(out)
        x = conv(net, f"conv{block}/sep", dw, channels, 1, bias=False)
        x = relu(net, f"relu{block}/sep", bn_scale(net, f"conv{block}/sep/bn", f"conv{block}/sep/scale", x, eps=EPS))
    x = pool(net, "pool6", x, AVE, global_pooling=True)
    softmax(net, "prob", conv(net, "fc7", x, classes, 1))
    return net

