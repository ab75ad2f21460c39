"""Training cases for the step-equality fixtures (runs under tools/caffe/python3 only).

A `TrainCase` is pure description: a training net fed by HDF5Data from `data.txt`, the solver
fields, the HDF5 files to draw, and the surgery applied after Caffe's fillers (bilinear deconvs as
surgery.interp leaves them, copy_from a parent case's final weights). make_train_fixtures.py runs
real Caffe's SGDSolver on it and records what it did.

The zoo cases keep the layer names, order and geometry of fcn.berkeleyvision.org's net.py (train
form: HDF5Data instead of the Python data layer, SoftmaxWithLoss), at reduced width. Dropout keeps
its place with dropout_ratio 0: Caffe draws the masks from its own RNG, which no port can replay.
The lr-policy, regularization and loss cases share one tiny net.

HDF5Data fixes its top shape from the first file and never reshapes (hdf5_data_layer.cpp), so all
files of a case have one size; two files of different row counts still test list order and
wrap-around.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from caffe import layers as L, params as P
from caffe import NetSpec
from caffe.proto import caffe_pb2

import nets

VOID = 255
SOURCE = "data.txt"
# Reduced VGG/AlexNet widths: wide enough that no ReLU stage is all dead, small enough that both
# caffemodels of a case stay far below 1 MB.
VGG_WIDTHS = (4, 4, 8, 8, 8)
VGG_FC = 16
ALEX_WIDTHS = (4, 8, 8, 8, 8)  # even: groups of 2
ALEX_FC = 16
CLASSES = 3
ITERS = 20
# Trunk convs: He (msra) weights, small constant biases; score layers (where the recipe does not
# zero them) gaussian: gradients reach every layer from iteration 0.
TRUNK_FILLERS = dict(weight_filler=dict(type="msra"), bias_filler=dict(type="constant", value=0.01))
SCORE_FILLERS = dict(weight_filler=dict(type="gaussian", std=0.1), bias_filler=dict(type="constant", value=0))


@dataclass
class DataSpec:
    """HDF5 files to draw: rows per file, one (C, H, W) for all, K classes, share of void pixels."""

    rows: tuple[int, ...]
    shape: tuple[int, int, int]
    classes: int = CLASSES
    void_share: float = 0.1
    scale: float = 20.0  # input std (mean-subtracted pixels are tens)
    label_block: int = 1  # labels constant on blocks of this side (1: one draw per pixel)


@dataclass
class TrainCase:
    name: str
    description: str
    net: caffe_pb2.NetParameter
    solver: dict  # SolverParameter fields besides train_net, snapshot, display, seeds
    data: DataSpec
    bilinear: tuple[str, ...] = ()  # deconvs set to the bilinear diagonal after the fillers
    parent: str | None = None  # case whose final.caffemodel is copied in by layer name
    notes: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- net pieces

def hdf5_input(n: NetSpec, batch: int = 1) -> None:
    n.data, n.label = L.HDF5Data(source=SOURCE, batch_size=batch, ntop=2)


def softmax_loss(n: NetSpec, score, **loss_param) -> None:
    loss_param.setdefault("ignore_label", VOID)
    n.loss = L.SoftmaxWithLoss(score, n.label, loss_param=loss_param)


def with_fillers(proto: caffe_pb2.NetParameter, fillers: dict[str, dict]) -> caffe_pb2.NetParameter:
    """Set weight/bias fillers by layer name (NetSpec's builders in nets.py take none)."""
    for layer in proto.layer:
        spec = fillers.get(layer.name)
        if spec is None:
            continue
        target = layer.convolution_param if layer.type in ("Convolution", "Deconvolution") else layer.inner_product_param
        for key, value in spec.items():
            getattr(target, key).CopyFrom(caffe_pb2.FillerParameter(**value))
    return proto


def no_dropout(proto: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    for layer in proto.layer:
        if layer.type == "Dropout":
            layer.dropout_param.dropout_ratio = 0.0
    return proto


def trunk_names(proto: caffe_pb2.NetParameter) -> list[str]:
    return [l.name for l in proto.layer if l.type == "Convolution" and not l.name.startswith("score")]


def vgg_train(name: str, stride: int, k: int, scale_skips: bool = False,
              score_zero: tuple[str, ...] = (), trunk: dict = TRUNK_FILLERS) -> caffe_pb2.NetParameter:
    """R voc-fcn{32,16,8}s[-atonce] train net at reduced width; score layers named in score_zero
    keep Caffe's default filler (constant 0), as R's new skip layers do."""
    n = NetSpec()
    hdf5_input(n)
    top = nets.vgg_trunk(n, n.data, widths=VGG_WIDTHS, fc=VGG_FC)
    nets.fcn_head(n, top, k, stride, scale_skips=scale_skips)
    softmax_loss(n, n.score, normalize=False)
    proto = no_dropout(nets.named(n, name))
    fillers = {t: trunk for t in trunk_names(proto)}
    fillers.update({l.name: SCORE_FILLERS for l in proto.layer
                    if l.name.startswith("score_") and l.type == "Convolution" and l.name not in score_zero})
    return with_fillers(proto, fillers)


def deconvs(proto: caffe_pb2.NetParameter) -> tuple[str, ...]:
    return tuple(l.name for l in proto.layer if l.type == "Deconvolution" and l.param and l.param[0].lr_mult == 0)


# ----------------------------------------------------------------------------- zoo cases

# The heavy recipe (sum loss, momentum 0.99) at the zoo's reduced widths is chaotic: one ReLU or
# max-pool window near a tie that falls the other way on a rounding difference moves a deep blob's
# update by about 1/(its positions), 4e-3 at conv5, far above the tests' 1e-4. Most such ties sat in
# the pad-100 margin, whose bias-only activations are tiny (ReLU near 0) and repeat along rows or
# columns (max-pool ties that the two programs' GEMMs break by one ulp, differently). So the trunk
# biases start at -0.1 (the margin is exactly 0: dead, no gradient), score_fr starts at zero as in
# R (net.py gives it no filler), the labels come in 16x16 blocks (like objects: the summed gradient
# is coherent, not the small residue of random per-pixel pulls), and the rate is 1e-6: over 20
# iterations the weights move 0.03% to a few %. See tests/fixtures/README.md for how often a fresh
# draw still parts.
HEAVY = dict(lr_policy="fixed", base_lr=1e-6, momentum=0.99, weight_decay=5e-4, iter_size=1)
HEAVY_TRUNK = dict(weight_filler=dict(type="msra"), bias_filler=dict(type="constant", value=-0.1))
HEAVY_LABEL_BLOCK = 16


def heavy_case(name: str, stride: int, description: str, data: tuple[tuple[int, ...], tuple[int, int, int]],
               score_zero: tuple[str, ...], parent: str | None = None, **net_options) -> TrainCase:
    """A VGG FCN case on the heavy recipe: HEAVY solver and trunk, labels in blocks, deconvs bilinear."""
    net = vgg_train(name, stride, CLASSES, score_zero=score_zero, trunk=HEAVY_TRUNK, **net_options)
    rows, shape = data
    return TrainCase(name, description, net, HEAVY, DataSpec(rows=rows, shape=shape, label_block=HEAVY_LABEL_BLOCK),
                     bilinear=deconvs(net), parent=parent)


def fcn32s_heavy() -> TrainCase:
    return heavy_case("fcn32s-heavy", 32, "R voc-fcn32s heavy recipe: SoftmaxWithLoss normalize false (sum), "
                      "fixed lr 1e-6, momentum 0.99, weight decay 5e-4, batch 1; conv lr_mult 1/2 decay 1/0, "
                      "trunk biases -0.1, score_fr zero (no filler, as R), upscore 64/32 bilinear and frozen "
                      "(lr_mult 0); labels in 16x16 blocks.", ((3, 2), (3, 37, 45)), score_zero=("score_fr",))


def fcn16s_staged() -> TrainCase:
    return heavy_case("fcn16s-staged", 16, "R voc-fcn16s heavy recipe staged from fcn32s-heavy: copy_from its "
                      "final.caffemodel by layer name (trunk, score_fr), score_pool4 zero (no filler, Caffe's "
                      "default constant 0), upscore2 4/2 and upscore16 32/16 bilinear and frozen; lr 1e-6; "
                      "labels in 16x16 blocks.", ((2, 3), (3, 41, 39)), score_zero=("score_pool4",),
                      parent="fcn32s-heavy")


def fcn8s_atonce() -> TrainCase:
    return heavy_case("fcn8s-atonce", 8, "R voc-fcn8s-atonce: frozen Scale layers scale_pool4 (0.01) and "
                      "scale_pool3 (0.0001, constant fillers, lr_mult 0) before zero-initialized score_pool4/3; "
                      "score_fr zero (as R), trunk biases -0.1; sum loss, lr 1e-6, momentum 0.99; deconvs "
                      "bilinear and frozen; labels in 16x16 blocks.", ((3, 4), (3, 39, 43)),
                      score_zero=("score_fr", "score_pool4", "score_pool3"), scale_skips=True)


def fcn_alexnet() -> TrainCase:
    name, k = "fcn-alexnet", CLASSES
    n = NetSpec()
    hdf5_input(n)
    nets.alexnet_features(n, ALEX_WIDTHS, first_pad=100, param=None)
    n.fc6, n.relu6 = nets.conv_relu(n.pool5, ALEX_FC, ks=6, pad=0, param=None)
    n.drop6 = L.Dropout(n.relu6, dropout_ratio=0.5, in_place=True)
    n.fc7, n.relu7 = nets.conv_relu(n.drop6, ALEX_FC, ks=1, pad=0, param=None)
    n.drop7 = L.Dropout(n.relu7, dropout_ratio=0.5, in_place=True)
    n.score_fr = nets.score_conv(n.drop7, k)
    n.upscore = nets.upsample(n.score_fr, k, 63, 32)
    n.score = nets.crop(n.upscore, n.data, 18)
    softmax_loss(n, n.score, normalize=True)
    proto = no_dropout(nets.named(n, name))
    fillers = {t: TRUNK_FILLERS for t in trunk_names(proto)}
    fillers["score_fr"] = SCORE_FILLERS
    proto = with_fillers(proto, fillers)
    return TrainCase(name, "R voc-fcn-alexnet recipe: LRN, grouped convs (no param specs: lr_mult 1 for "
                     "weights and biases), normalize true (mean over valid pixels), lr 1e-4, momentum 0.9, "
                     "iter_size 4; upscore 63/32 bilinear and frozen.", proto,
                     dict(lr_policy="fixed", base_lr=1e-3, momentum=0.9, weight_decay=5e-4, iter_size=4),
                     DataSpec(rows=(3, 2), shape=(3, 45, 51)), bilinear=deconvs(proto))


def cvpr_fcn8s() -> TrainCase:
    """CVPR-era FCN-8s (fcn-8s-pascal's layers, unique names): learned score2 (with bias) and
    score4 (no bias), fixed upsample."""
    name, k = "cvpr-fcn8s", CLASSES
    proto = nets.cvpr_fcn(8, k, notes="", hw=(1, 1), widths=VGG_WIDTHS, fc=VGG_FC).net
    kept = []
    for layer in proto.layer:
        if layer.type == "Input":
            continue
        kept.append(layer)
    n = NetSpec()
    hdf5_input(n)
    head = nets.named(n, name)
    head.layer.extend(kept)
    names = {"crop": ["crop4", "crop3", "crop_out"], "fuse": ["fuse4", "fuse3"]}
    for layer in head.layer:  # unique names (the CVPR files repeat 'crop' and 'fuse')
        if layer.name in names:
            layer.name = names[layer.name].pop(0)
    loss = head.layer.add()
    loss.CopyFrom(caffe_pb2.LayerParameter(name="loss", type="SoftmaxWithLoss", bottom=["upscore", "label"],
                                           top=["loss"]))
    loss.loss_param.ignore_label = VOID
    loss.loss_param.normalize = True
    proto = no_dropout(head)
    fillers = {t: TRUNK_FILLERS for t in trunk_names(proto)}
    # score-pool4/3 keep Caffe's default filler (constant 0): new skip layers, as in the recipe.
    fillers.update({"score-fr": SCORE_FILLERS})
    proto = with_fillers(proto, fillers)
    return TrainCase(name, "CVPR-era FCN-8s recipe: learned deconvolutions score2 (4/2, bias, lr_mult 1/2) "
                     "and score4 (4/2, no bias), both set to the bilinear diagonal by surgery (Caffe's "
                     "bilinear filler puts the kernel on every channel pair: all classes equal, no "
                     "gradient), fixed upsample 16/8; new skip layers score-pool4/3 zero; normalize true, "
                     "momentum 0.9, iter_size 4, bias lr x2.", proto,
                     dict(lr_policy="fixed", base_lr=3e-3, momentum=0.9, weight_decay=5e-4, iter_size=4),
                     DataSpec(rows=(2, 3), shape=(3, 35, 47), scale=4.0), bilinear=("score2", "score4") + deconvs(proto))


# ----------------------------------------------------------------------------- tiny-net cases

def tiny_net(name: str, batch: int = 1, loss_weight: float | None = None, **loss_param) -> caffe_pb2.NetParameter:
    """conv 3x3 -> ReLU -> max pool (ceil) -> 1x1 score -> learned deconv 4/2 (group K, Caffe's
    bilinear filler: one kernel per class) -> crop -> loss."""
    n = NetSpec()
    hdf5_input(n, batch)
    n.conv1 = L.Convolution(n.data, num_output=6, kernel_size=3, pad=1, param=nets.CONV_PARAM,
                            weight_filler=dict(type="msra"), bias_filler=dict(type="constant", value=0.1))
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.pool1 = nets.max_pool(n.relu1)
    n.score_fr = L.Convolution(n.pool1, num_output=CLASSES, kernel_size=1, param=nets.CONV_PARAM,
                               weight_filler=dict(type="gaussian", std=0.1),
                               bias_filler=dict(type="gaussian", std=0.1))
    n.upscore = L.Deconvolution(n.score_fr, param=nets.CONV_PARAM, convolution_param=dict(
        num_output=CLASSES, kernel_size=4, stride=2, group=CLASSES, weight_filler=dict(type="bilinear"),
        bias_filler=dict(type="constant", value=0)))
    n.score = nets.crop(n.upscore, n.data, 1)
    loss_param.setdefault("ignore_label", VOID)
    extra = {} if loss_weight is None else dict(loss_weight=loss_weight)
    n.loss = L.SoftmaxWithLoss(n.score, n.label, loss_param=loss_param, **extra)
    return nets.named(n, name)


TINY = dict(base_lr=0.1, momentum=0.9, weight_decay=5e-4, iter_size=1)
TINY_DATA = DataSpec(rows=(3, 4), shape=(3, 13, 17), scale=1.0)
LR_POLICIES = {
    "fixed": dict(),
    "step": dict(gamma=0.5, stepsize=6),
    "multistep": dict(gamma=0.5, stepvalue=[3, 8, 15]),
    "exp": dict(gamma=0.9),
    "inv": dict(gamma=0.1, power=0.75),
    "poly": dict(power=1.5),
    "sigmoid": dict(gamma=-0.5, stepsize=10),
}


def lr_policy_case(policy: str) -> TrainCase:
    name = f"lr-{policy}"
    return TrainCase(name, f"lr_policy {policy} ({LR_POLICIES[policy] or 'no parameters'}) on the tiny net "
                     "(conv 3x3, ReLU, ceil max pool, 1x1 score, learned grouped deconv 4/2 with bias, "
                     "crop, SoftmaxWithLoss VALID).", tiny_net(name),
                     dict(TINY, lr_policy=policy, **LR_POLICIES[policy]), TINY_DATA)


def l1_case() -> TrainCase:
    return TrainCase("reg-l1", "regularization_type L1 (weight decay 0.01 * sign(w)) on the tiny net.",
                     tiny_net("reg-l1"), dict(TINY, lr_policy="fixed", weight_decay=0.01,
                                              regularization_type="L1"), TINY_DATA)


def clip_case() -> TrainCase:
    return TrainCase("clip-gradients", "clip_gradients with iter_size 2 on the tiny net: the L2 norm is "
                     "taken over all parameter diffs before the division by iter_size; the threshold 0.6 "
                     "lies inside the range of the norms, so some iterations clip and some do not "
                     "(meta.json: clipped_iterations, grad_norms).",
                     tiny_net("clip-gradients"), dict(TINY, lr_policy="fixed", iter_size=2, clip_gradients=0.6),
                     TINY_DATA)


NORMALIZATIONS = {  # case -> (loss_param, batch, lr): the lr keeps the step per pixel alike
    "loss-full": (dict(normalization=P.Loss.FULL), 1, 0.1),
    "loss-valid": (dict(normalization=P.Loss.VALID), 1, 0.1),
    "loss-batch-size": (dict(normalization=P.Loss.BATCH_SIZE), 2, 4e-4),
    "loss-none": (dict(normalization=P.Loss.NONE), 1, 4e-4),
    "loss-legacy-normalize": (dict(normalize=True), 2, 0.1),
}


def normalization_case(name: str) -> TrainCase:
    loss_param, batch, lr = NORMALIZATIONS[name]
    return TrainCase(name, f"SoftmaxWithLoss {loss_param} with batch {batch} on the tiny net (legacy "
                     "normalize applies only where normalization is not set: true = VALID, false = "
                     "BATCH_SIZE).", tiny_net(name, batch, **loss_param),
                     dict(TINY, lr_policy="fixed", base_lr=lr), TINY_DATA)


def loss_weight_case() -> TrainCase:
    return TrainCase("loss-weight", "SoftmaxWithLoss loss_weight 2.5 (VALID): the reported loss and every "
                     "gradient are scaled by 2.5.", tiny_net("loss-weight", loss_weight=2.5),
                     dict(TINY, lr_policy="fixed", base_lr=0.04), TINY_DATA)


# case -> (solver fields, {layer: [(lr_mult, decay_mult) per blob]}, batch): per-blob multipliers
# against both regularizations, and plain SGD without momentum.
SOLVER_VARIANTS = {
    "momentum-0": (dict(lr_policy="fixed", base_lr=0.3, momentum=0.0), {}, 1),
    "mults-l1": (dict(lr_policy="fixed", weight_decay=0.01, regularization_type="L1"),
                 {"conv1": [(1, 2), (2, 0)], "score_fr": [(1, 0), (2, 0)], "upscore": [(0.5, 1), (1, 1)]}, 1),
    "mults-l2": (dict(lr_policy="inv", gamma=0.2, power=0.5, weight_decay=0.05),
                 {"conv1": [(1, 0), (2, 2)], "upscore": [(1, 4), (0.5, 3)]}, 2),
}


def solver_variant_case(name: str) -> TrainCase:
    solver, mults, batch = SOLVER_VARIANTS[name]
    net = tiny_net(name, batch)
    for layer in net.layer:
        for i, (lr_mult, decay_mult) in enumerate(mults.get(layer.name, [])):
            layer.param[i].lr_mult, layer.param[i].decay_mult = lr_mult, decay_mult
    return TrainCase(name, f"{solver} with per-blob (lr_mult, decay_mult) {mults or 'as the tiny net'}, batch "
                     f"{batch}, on the tiny net.", net, dict(TINY, **solver), TINY_DATA)


ZOO = [fcn32s_heavy, fcn16s_staged, fcn8s_atonce, fcn_alexnet, cvpr_fcn8s]


def all_cases() -> list[TrainCase]:
    cases = [make() for make in ZOO]
    cases += [lr_policy_case(p) for p in LR_POLICIES]
    cases += [l1_case(), clip_case()]
    cases += [normalization_case(n) for n in NORMALIZATIONS]
    cases.append(loss_weight_case())
    cases += [solver_variant_case(n) for n in SOLVER_VARIANTS]
    return cases
