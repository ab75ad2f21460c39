"""SqueezeNet v1.1 as in forresti/SqueezeNet SqueezeNet_v1.1/deploy.prototxt: fire modules
(1x1 squeeze, then 1x1 and 3x3 expands concatenated), global average pooling."""
from __future__ import annotations

from .layers import Width, concat, conv, dropout, pool, relu, softmax
from .prototxt import AVE, NetText

# fire module -> (squeeze, expand); both expands have the same width.
FIRES = {2: (16, 64), 3: (16, 64), 4: (32, 128), 5: (32, 128), 6: (48, 192), 7: (48, 192), 8: (64, 256), 9: (64, 256)}
POOL_AFTER = {3: "pool3", 5: "pool5"}


def fire(net: NetText, w: Width, n: int, x: str) -> str:
    squeeze, expand = (w(c) for c in FIRES[n])
    p = f"fire{n}/"
    s = relu(net, p + "relu_squeeze1x1", conv(net, p + "squeeze1x1", x, squeeze, 1))
    e1 = relu(net, p + "relu_expand1x1", conv(net, p + "expand1x1", s, expand, 1))
    e3 = relu(net, p + "relu_expand3x3", conv(net, p + "expand3x3", s, expand, 3, pad=1))
    return concat(net, p + "concat", [e1, e3])


def build(w: Width, classes: int, shape: tuple[int, ...]) -> NetText:
    net = NetText("SqueezeNet_v1.1")
    x = net.input("data", shape, "layer")
    x = pool(net, "pool1", relu(net, "relu_conv1", conv(net, "conv1", x, w(64), 3, stride=2)), kernel=3, stride=2)
    for n in FIRES:
        x = fire(net, w, n, x)
        if n in POOL_AFTER:
            x = pool(net, POOL_AFTER[n], x, kernel=3, stride=2)
    x = relu(net, "relu_conv10", conv(net, "conv10", dropout(net, "drop9", x), classes, 1))
    softmax(net, "prob", pool(net, "pool10", x, AVE, global_pooling=True))
    return net
