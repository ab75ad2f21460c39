"""GoogLeNet as in BVLC's models/bvlc_googlenet/deploy.prototxt: nine inception modules."""
from __future__ import annotations

from .layers import Width, concat, conv, dropout, inner_product, lrn, pool, relu, softmax
from .prototxt import AVE, NetText

# (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection) per module, from the paper's Table 1.
INCEPTIONS = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64), "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64), "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}
POOL_AFTER = {"3b": "pool3/3x3_s2", "4e": "pool4/3x3_s2"}


def inception(net: NetText, w: Width, key: str, x: str) -> str:
    n1, n3r, n3, n5r, n5, npool = (w(c) for c in INCEPTIONS[key])
    p = f"inception_{key}/"
    b1 = relu(net, p + "relu_1x1", conv(net, p + "1x1", x, n1, 1))
    b3 = relu(net, p + "relu_3x3_reduce", conv(net, p + "3x3_reduce", x, n3r, 1))
    b3 = relu(net, p + "relu_3x3", conv(net, p + "3x3", b3, n3, 3, pad=1))
    b5 = relu(net, p + "relu_5x5_reduce", conv(net, p + "5x5_reduce", x, n5r, 1))
    b5 = relu(net, p + "relu_5x5", conv(net, p + "5x5", b5, n5, 5, pad=2))
    bp = pool(net, p + "pool", x, kernel=3, stride=1, pad=1)
    bp = relu(net, p + "relu_pool_proj", conv(net, p + "pool_proj", bp, npool, 1))
    return concat(net, p + "output", [b1, b3, b5, bp])


def build(w: Width, classes: int, shape: tuple[int, ...]) -> NetText:
    net = NetText("GoogleNet")
    x = net.input("data", shape, "layer")
    x = relu(net, "conv1/relu_7x7", conv(net, "conv1/7x7_s2", x, w(64), 7, stride=2, pad=3))
    x = lrn(net, "pool1/norm1", pool(net, "pool1/3x3_s2", x, kernel=3, stride=2))
    x = relu(net, "conv2/relu_3x3_reduce", conv(net, "conv2/3x3_reduce", x, w(64), 1))
    x = lrn(net, "conv2/norm2", relu(net, "conv2/relu_3x3", conv(net, "conv2/3x3", x, w(192), 3, pad=1)))
    x = pool(net, "pool2/3x3_s2", x, kernel=3, stride=2)
    for key in INCEPTIONS:
        x = inception(net, w, key, x)
        if key in POOL_AFTER:
            x = pool(net, POOL_AFTER[key], x, kernel=3, stride=2)
    x = dropout(net, "pool5/drop_7x7_s1", pool(net, "pool5/7x7_s1", x, AVE, kernel=7, stride=1), 0.4)
    softmax(net, "prob", inner_product(net, "loss3/classifier", x, classes))
    return net
