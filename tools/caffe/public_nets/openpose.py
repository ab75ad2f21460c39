"""OpenPose body (COCO) as in CMU-Perceptual-Computing-Lab/openpose
models/pose/coco/pose_deploy_linevec.prototxt: VGG19 conv1-4 and two CPM convs, then six stages of
two branches (L1: 38 part-affinity maps, L2: 19 heatmaps) joined by Concat layers."""
from __future__ import annotations

from .layers import Width, concat, conv, pool, relu
from .prototxt import NetText

VGG = ((1, 64, 2), (2, 128, 2), (3, 256, 4), (4, 512, 2))
BRANCH_OUTPUTS = {1: 38, 2: 19}
STAGES = 6


def build(w: Width, classes: int, shape: tuple[int, ...]) -> NetText:
    net = NetText("OpenPose-COCO")
    x = net.input("image", shape, "input_dim")
    for stage, width, convs in VGG:
        if stage > 1:
            x = pool(net, f"pool{stage - 1}_stage1", x, kernel=2, stride=2)
        for i in range(1, convs + 1):
            x = relu(net, f"relu{stage}_{i}", conv(net, f"conv{stage}_{i}", x, w(width), 3, pad=1))
    x = relu(net, "relu4_3_CPM", conv(net, "conv4_3_CPM", x, w(256), 3, pad=1))
    features = relu(net, "relu4_4_CPM", conv(net, "conv4_4_CPM", x, w(128), 3, pad=1))

    # Stage 1: three 3x3 convs, a 1x1 to 512 and a 1x1 to the maps, the branches interleaved.
    heads = {b: features for b in BRANCH_OUTPUTS}
    for i, (n, k) in enumerate(((128, 3), (128, 3), (128, 3), (512, 1)), start=1):
        for b in BRANCH_OUTPUTS:
            heads[b] = relu(net, f"relu5_{i}_CPM_L{b}",
                            conv(net, f"conv5_{i}_CPM_L{b}", heads[b], w(n), k, pad=k // 2))
    for b, maps in BRANCH_OUTPUTS.items():
        heads[b] = conv(net, f"conv5_5_CPM_L{b}", heads[b], maps, 1)
    for t in range(2, STAGES + 1):
        x = concat(net, f"concat_stage{t}", [heads[1], heads[2], features])
        heads = {b: x for b in BRANCH_OUTPUTS}
        for i, (k, pad) in enumerate(((7, 3),) * 5 + ((1, 0),), start=1):
            for b in BRANCH_OUTPUTS:
                heads[b] = relu(net, f"Mrelu{i}_stage{t}_L{b}",
                                conv(net, f"Mconv{i}_stage{t}_L{b}", heads[b], w(128), k, pad=pad))
        for b, maps in BRANCH_OUTPUTS.items():
            heads[b] = conv(net, f"Mconv7_stage{t}_L{b}", heads[b], maps, 1)
    concat(net, "concat_stage7", [heads[2], heads[1]], top="net_output")
    return net
