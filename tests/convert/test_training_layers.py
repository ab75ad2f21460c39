"""SoftmaxWithLoss, Accuracy and train-time Dropout against independent numpy computations of
Caffe's formulas (softmax_loss_layer.cpp, accuracy_layer.cpp, dropout_layer.cpp)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from convert.training_layers import FLT_MIN, Accuracy, Dropout, SoftmaxWithLoss, normalization_mode
from convert.schema import LayerParameter


def _reference_loss(scores: np.ndarray, labels: np.ndarray, ignore: int | None, mode: str):
    """Caffe's loss and gradient in float64 numpy, one position at a time."""
    n, c, h, w = scores.shape
    s = scores.astype(np.float64)
    e = np.exp(s - s.max(1, keepdims=True))
    p = e / e.sum(1, keepdims=True)
    loss, valid = 0.0, 0
    grad = p.copy()
    for i in range(n):
        for y in range(h):
            for x in range(w):
                label = int(labels[i, 0, y, x])
                if ignore is not None and label == ignore:
                    grad[i, :, y, x] = 0
                    continue
                loss -= np.log(max(p[i, label, y, x], FLT_MIN))
                grad[i, label, y, x] -= 1
                valid += 1
    norm = max(1.0, {"FULL": n * h * w, "VALID": valid, "BATCH_SIZE": n, "NONE": 1}[mode])
    return loss / norm, grad / norm


@pytest.mark.parametrize("mode", ["FULL", "VALID", "BATCH_SIZE", "NONE"])
def test_softmax_loss_value_and_gradient(mode):
    rng = np.random.default_rng(1)
    scores = rng.normal(0, 3, (2, 5, 7, 9)).astype(np.float32)
    labels = rng.integers(0, 5, (2, 1, 7, 9)).astype(np.float32)
    labels[0, 0, :3, :4] = 255
    ref_loss, ref_grad = _reference_loss(scores, labels, 255, mode)
    x = torch.tensor(scores, requires_grad=True)
    loss = SoftmaxWithLoss(1, 255, mode)(x, torch.tensor(labels))
    (loss * 3.0).backward()  # a loss_weight of 3
    assert abs(loss.item() - ref_loss) <= 1e-6 * abs(ref_loss)
    np.testing.assert_allclose(x.grad.numpy(), 3.0 * ref_grad, rtol=1e-5, atol=1e-7)


def test_softmax_loss_clamps_at_flt_min_with_caffes_gradient():
    scores = torch.zeros(1, 2, 1, 1)
    scores[0, 0] = 200.0  # p(label 1) = e^-200: underflows to 0 in float32
    scores.requires_grad_(True)
    loss = SoftmaxWithLoss(1, None, "VALID")(scores, torch.ones(1, 1, 1, 1))
    loss.backward()
    assert loss.item() == pytest.approx(-np.log(np.float32(FLT_MIN)), rel=1e-6)  # 87.34, not 200
    assert scores.grad[0, :, 0, 0].tolist() == pytest.approx([1.0, -1.0])  # p - onehot, not 0


def test_legacy_normalize_flag():
    param = LayerParameter()
    assert normalization_mode(param.loss_param) == "VALID"
    param.loss_param.normalize = False
    assert normalization_mode(param.loss_param) == "BATCH_SIZE"
    param.loss_param.normalization = 0  # an explicit normalization wins over the legacy flag
    assert normalization_mode(param.loss_param) == "FULL"


def test_accuracy_top_k_and_ties():
    scores = torch.tensor([[3.0, 1.0, 2.0], [1.0, 1.0, 0.0], [0.0, 5.0, 4.0], [1.0, 2.0, 3.0]])
    labels = torch.tensor([0.0, 1.0, 2.0, 255.0])
    # rows: correct; tie with class 0 counts against (top-1 wrong); 2nd best; ignored
    assert Accuracy(1, 1, 255, False)(scores, labels).item() == pytest.approx(1 / 3)
    assert Accuracy(2, 1, 255, False)(scores, labels).item() == pytest.approx(1.0)
    overall, per_class = Accuracy(1, 1, 255, True)(scores, labels)
    assert per_class.tolist() == [1.0, 0.0, 0.0] and overall.item() == pytest.approx(1 / 3)


def test_dropout_scaling_at_train_time():
    torch.manual_seed(0)
    layer = Dropout(0.3)
    x = torch.rand(200, 300) + 1.0
    assert layer.eval()(x) is x
    y = layer.train()(x)
    kept = y != 0
    scale = np.float32(1.0 / (1.0 - np.float64(np.float32(0.3))))  # Caffe's float scale_
    assert torch.equal(y[kept], x[kept] * torch.tensor(scale))
    assert abs(kept.float().mean().item() - 0.7) < 0.01
    x.requires_grad_(True)
    y = layer(x)
    y.sum().backward()
    assert torch.equal(x.grad, (y != 0).float() * torch.tensor(scale))
    assert torch.equal(Dropout(0.0).train()(x), x)  # ratio 0: every element kept, scale 1


def test_the_zoo_dropout_is_the_runtimes_and_a_dropped_nan_stays_nan():
    """``fcn_ref.blocks.Dropout`` (an ``nn.Dropout``) draws the runtime layer's mask from the same
    RNG state and scales by Caffe's float; a dropped element is ``x * 0``, NaN for NaN, as Caffe's
    ``bottom * mask * scale``."""
    from fcn_ref.blocks import Dropout as ZooDropout

    x = torch.randn(40, 50)
    x[0] = float("nan")
    torch.manual_seed(3)
    want = Dropout(0.3).train()(x)
    torch.manual_seed(3)
    got = ZooDropout(0.3).train()(x)
    assert torch.equal(got.nan_to_num(7.0), want.nan_to_num(7.0))
    assert torch.isnan(got[0]).all()  # kept or dropped
    assert ZooDropout(0.3).eval()(x) is x


def test_softmax_loss_sums_in_float32_one_term_at_a_time():
    """Caffe adds each position's term into a float in turn; over many pixels that sum drifts from
    the exact one (here by 3e-4: real Caffe reports 24710.72 for this net), and the loss must drift
    with it. The terms are equal (zero scores: -log(float32(1/3)) everywhere), so the reference is a
    plain float32 loop."""
    shape = (1, 3, 151, 149)
    term = -np.log(np.float32(1.0) / np.float32(3.0))
    total = np.float32(0.0)
    for _ in range(shape[2] * shape[3]):
        total = np.float32(total + term)
    exact = float(term) * shape[2] * shape[3]
    assert abs(float(total) - exact) > 1e-6 * exact  # the drift the test is about
    loss = SoftmaxWithLoss(1, None, "NONE")(torch.zeros(shape), torch.zeros(1, 1, *shape[2:]))
    assert loss.item() == float(total)


CAFFE_TRAIN_LAYERS = '''
import sys
import caffe
import numpy as np
from caffe.proto import caffe_pb2
net_file, out = sys.argv[1], sys.argv[2]
caffe.set_mode_cpu()
caffe.set_random_seed(3)
net = caffe.Net(net_file, caffe.TRAIN)
rng = np.random.RandomState(0)
net.blobs["x"].data[...] = rng.uniform(1, 2, net.blobs["x"].data.shape)
net.blobs["s"].data[...] = 0
net.blobs["l"].data[...] = 0
net.forward()
np.savez(out, x=net.blobs["x"].data, y=net.blobs["y"].data, loss=net.blobs["loss"].data)
'''

CAFFE_TRAIN_NET = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 5 dim: 31 dim: 29 } } }
layer { name: "s" type: "Input" top: "s" input_param { shape { dim: 1 dim: 3 dim: 151 dim: 149 } } }
layer { name: "l" type: "Input" top: "l" input_param { shape { dim: 1 dim: 1 dim: 151 dim: 149 } } }
layer { name: "drop" type: "Dropout" bottom: "x" top: "y" dropout_param { dropout_ratio: 0.3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "s" bottom: "l" top: "loss"
        loss_param { normalization: NONE } }
"""


@pytest.mark.oracle
def test_train_time_dropout_and_loss_sum_match_live_caffe(live_caffe, tmp_path):
    """Real Caffe in TRAIN phase: every element its Dropout keeps is scaled by exactly our factor
    (its masks are its own RNG's, so only the scale and the kept share are compared), and its
    SoftmaxWithLoss over 22,499 equal terms is our float32 sum, bit for bit."""
    (tmp_path / "net.prototxt").write_text(CAFFE_TRAIN_NET)
    (tmp_path / "run.py").write_text(CAFFE_TRAIN_LAYERS)
    live_caffe(tmp_path / "run.py", tmp_path / "net.prototxt", tmp_path / "out.npz")
    caffe = np.load(tmp_path / "out.npz")
    x, y = caffe["x"], caffe["y"]
    kept = y != 0
    ours = Dropout(0.3)
    assert np.array_equal(y[kept], (torch.from_numpy(x[kept]) * ours.scale).numpy())
    assert abs(kept.mean() - 0.7) < 0.03
    loss = SoftmaxWithLoss(1, None, "NONE")(torch.zeros(1, 3, 151, 149), torch.zeros(1, 1, 151, 149))
    assert loss.item() == float(caffe["loss"])
