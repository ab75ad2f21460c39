"""ResNet-50 as in KaimingHe/deep-residual-networks prototxt/ResNet-50-deploy.prototxt:
bottleneck blocks with BatchNorm (stored statistics) + Scale after every convolution."""
from __future__ import annotations

from .layers import Width, bn_scale, conv, eltwise_sum, inner_product, pool, relu, softmax
from .prototxt import AVE, NetText

# (stage, blocks, bottleneck width); the block output is 4x the bottleneck width.
STAGES = ((2, 3, 64), (3, 4, 128), (4, 6, 256), (5, 3, 512))


def build(w: Width, classes: int, shape: tuple[int, ...]) -> NetText:
    net = NetText("ResNet-50")
    x = net.input("data", shape, "input_dim")
    x = conv(net, "conv1", x, w(64), 7, stride=2, pad=3)
    bn_scale(net, "bn_conv1", "scale_conv1", x, global_stats=True)
    x = pool(net, "pool1", relu(net, "conv1_relu", x), kernel=3, stride=2)
    for stage, blocks, width in STAGES:
        for b in range(blocks):
            block = f"{stage}{chr(ord('a') + b)}"
            stride = 2 if b == 0 and stage > 2 else 1
            shortcut = x
            if b == 0:
                shortcut = conv(net, f"res{block}_branch1", x, w(4 * width), 1, stride=stride, bias=False)
                bn_scale(net, f"bn{block}_branch1", f"scale{block}_branch1", shortcut, global_stats=True)
            y = x
            for part, (n, k, s, p) in zip("abc", ((width, 1, stride, 0), (width, 3, 1, 1), (4 * width, 1, 1, 0))):
                y = conv(net, f"res{block}_branch2{part}", y, w(n), k, stride=s, pad=p, bias=False)
                bn_scale(net, f"bn{block}_branch2{part}", f"scale{block}_branch2{part}", y, global_stats=True)
                if part != "c":
                    relu(net, f"res{block}_branch2{part}_relu", y)
            x = relu(net, f"res{block}_relu", eltwise_sum(net, f"res{block}", [shortcut, y]))
    x = pool(net, "pool5", x, AVE, kernel=7, stride=1)
    softmax(net, "prob", inner_product(net, "fc1000", x, classes))
    return net

