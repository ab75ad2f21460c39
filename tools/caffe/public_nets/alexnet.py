"""AlexNet as in BVLC's models/bvlc_alexnet/deploy.prototxt: LRN before pooling, grouped convs."""
from __future__ import annotations

from .layers import Width, conv, dropout, inner_product, lrn, pool, relu, softmax
from .prototxt import NetText


def build(w: Width, classes: int, shape: tuple[int, ...]) -> NetText:
    net = NetText("AlexNet")
    x = net.input("data", shape, "layer")
    x = relu(net, "relu1", conv(net, "conv1", x, w(96, 2), 11, stride=4))
    x = pool(net, "pool1", lrn(net, "norm1", x), kernel=3, stride=2)
    x = relu(net, "relu2", conv(net, "conv2", x, w(256, 2), 5, pad=2, group=2))
    x = pool(net, "pool2", lrn(net, "norm2", x), kernel=3, stride=2)
    x = relu(net, "relu3", conv(net, "conv3", x, w(384, 2), 3, pad=1))
    x = relu(net, "relu4", conv(net, "conv4", x, w(384, 2), 3, pad=1, group=2))
    x = relu(net, "relu5", conv(net, "conv5", x, w(256, 2), 3, pad=1, group=2))
    x = pool(net, "pool5", x, kernel=3, stride=2)
    for fc in ("fc6", "fc7"):
        x = dropout(net, "drop" + fc[2:], relu(net, "relu" + fc[2:], inner_product(net, fc, x, w.fc(4096))))
    softmax(net, "prob", inner_product(net, "fc8", x, classes))
    return net
