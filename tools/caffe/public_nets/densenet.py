"""DenseNet-121 as in shicai/DenseNet-Caffe DenseNet_121.prototxt (the version with the fork's
``ceil_mode: false`` on pool1): dense blocks of BN-Scale-ReLU-1x1 / BN-Scale-ReLU-3x3 layers whose
outputs are concatenated, transitions halving the channels."""
from __future__ import annotations

from .layers import Width, bn_scale, concat, conv, pool, relu
from .prototxt import AVE, NetText

BLOCKS = (6, 12, 24, 16)
GROWTH, BOTTLENECK, STEM = 32, 128, 64
EPS = 1e-5


def build(w: Width, classes: int, shape: tuple[int, ...]) -> NetText:
    net = NetText("DENSENET_121")
    x = net.input("data", shape, "input_dim")
    x = conv(net, "conv1", x, w(STEM), 7, stride=2, pad=3, bias=False)
    x = relu(net, "relu1", bn_scale(net, "conv1/bn", "conv1/scale", x, "conv1/bn", EPS))
    x = pool(net, "pool1", x, kernel=3, stride=2, pad=1, ceil_mode=False)
    channels = w(STEM)
    for b, layers in enumerate(BLOCKS, start=2):
        for i in range(1, layers + 1):
            p = f"conv{b}_{i}"
            y = bn_scale(net, f"{p}/x1/bn", f"{p}/x1/scale", x, f"{p}/x1/bn", EPS)
            y = conv(net, f"{p}/x1", relu(net, f"relu{b}_{i}/x1", y), w(BOTTLENECK), 1, bias=False)
            y = bn_scale(net, f"{p}/x2/bn", f"{p}/x2/scale", y, f"{p}/x2/bn", EPS)
            y = conv(net, f"{p}/x2", relu(net, f"relu{b}_{i}/x2", y), w(GROWTH), 3, pad=1, bias=False)
            x = concat(net, f"concat_{b}_{i}", [x, y])
            channels += w(GROWTH)
        y = relu(net, f"relu{b}_blk", bn_scale(net, f"conv{b}_blk/bn", f"conv{b}_blk/scale", x, f"conv{b}_blk/bn", EPS))
        if b < 2 + len(BLOCKS) - 1:
            channels //= 2
            x = pool(net, f"pool{b}", conv(net, f"conv{b}_blk", y, channels, 1, bias=False), AVE, kernel=2, stride=2)
    x = pool(net, "pool5", y, AVE, global_pooling=True)
    conv(net, "fc6", x, classes, 1)
    return net
