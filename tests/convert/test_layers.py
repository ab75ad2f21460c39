"""Per-layer semantics on small cases whose answers are worked out by hand from Caffe's rules.

The parity tests compare against real Caffe on a few shapes each; these pin down the rules
themselves (pooling sizes and divisors, top-left crops, weight layouts...) on the edge cases.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from google.protobuf import text_format

from convert.errors import CaffeFormatError
from convert.layers import LAYER_BUILDERS, build_layer
from convert.modules import Deconvolution, caffe_pooled_size
from convert.net import CaffeNet, Layer
from convert.runtime import CaffeModule
from convert.schema import LayerParameter, NetParameter

FLT_MAX = float(np.finfo(np.float32).max)


def make_layer(text: str, *blobs: np.ndarray) -> Layer:
    return Layer(text_format.Parse(text, LayerParameter()), [np.asarray(b, np.float32) for b in blobs])


def module_for(text: str, *blobs: np.ndarray) -> torch.nn.Module:
    layer = make_layer(text, *blobs)
    return build_layer(layer, CaffeNet("t", {}, [layer]))


def net(text: str, inputs: dict[str, tuple[int, ...]], blobs: dict[str, list[np.ndarray]] | None = None,
        **options) -> CaffeModule:
    param = text_format.Parse(text, NetParameter())
    layers = [Layer(p, [np.asarray(b, np.float32) for b in (blobs or {}).get(p.name, [])]) for p in param.layer]
    return CaffeModule(CaffeNet("t", inputs, layers), **options).eval()


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def caffe_pool_loop(x: np.ndarray, k: int, s: int, p: int, average: bool, ceil: bool = True) -> np.ndarray:
    """Caffe's pooling_layer.cpp forward, written out loop by loop (square geometry)."""
    n, c, h, w = x.shape
    oh, ow = (caffe_pooled_size(size, k, s, p, ceil, p > 0) for size in (h, w))
    out = np.empty((n, c, oh, ow), np.float32)
    for i in range(oh):
        for j in range(ow):
            hs, ws = i * s - p, j * s - p
            he, we = min(hs + k, h + p), min(ws + k, w + p)
            size = (he - hs) * (we - ws)
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
            window = x[:, :, hs:he, ws:we]
            if average:
                with np.errstate(invalid="ignore"):  # an empty window is 0 / 0 in Caffe too
                    out[:, :, i, j] = window.sum(axis=(2, 3)) / size
            else:
                out[:, :, i, j] = window.max(axis=(2, 3)) if window.size else -FLT_MAX
    return out


def pool_text(method: str, k: int, s: int, p: int, round_mode: str = "CEIL") -> str:
    return (f'name: "pool" type: "Pooling" bottom: "x" top: "pool" pooling_param {{ pool: {method} '
            f'kernel_size: {k} stride: {s} pad: {p} round_mode: {round_mode} }}')


# ----------------------------------------------------------------------------- pooling


@pytest.mark.parametrize(("size", "k", "s", "p", "expected"), [
    (5, 2, 2, 0, 3),    # ceil(3/2) + 1: the last window hangs over the edge
    (4, 2, 2, 0, 2),    # exact fit
    (4, 3, 2, 1, 3),    # ceil(3/2) + 1 = 3; 2*2 = 4 < 4 + 1, kept
    (3, 3, 3, 2, 2),    # ceil(4/3) + 1 = 3; 2*3 = 6 >= 3 + 2: starts in the padding, dropped
    (3, 2, 2, 1, 2),    # ceil(3/2) + 1 = 3; 2*2 = 4 >= 3 + 1, dropped
    (5, 1, 3, 0, 3),    # no pad, so no drop even though the window starts past the end
    (2, 3, 2, 0, 1),    # smaller than the kernel: ceil(-1/2) + 1 = 1, one clipped window
    (1, 3, 2, 0, 0),    # ceil(-2/2) + 1 = 0: too small, Caffe makes an empty blob
])
def test_caffe_pooled_size(size, k, s, p, expected):
    assert caffe_pooled_size(size, k, s, p, ceil=True, padded=p > 0) == expected


def test_floor_round_mode():
    assert caffe_pooled_size(5, 2, 2, 0, ceil=False, padded=False) == 2
    pool = module_for('name: "p" type: "Pooling" pooling_param { pool: MAX kernel_size: 2 stride: 2 '
                      'round_mode: FLOOR }')
    assert pool(torch.zeros(1, 1, 5, 7)).shape == (1, 1, 2, 3)


def test_ave_divisor_counts_padding_up_to_the_padded_edge():
    """H = 4, k = 3, s = 2, p = 1: windows [-1, 2), [1, 4), [3, 6) clipped to the padded edge 5 ->
    divisors 3, 3, 2 covering 2, 3, 1 pixels of ones: 2/3, 1, 1/2 per axis."""
    pool = module_for(pool_text("AVE", 3, 2, 1))
    per_axis = t([2 / 3, 1, 1 / 2])
    torch.testing.assert_close(pool(torch.ones(1, 1, 4, 4))[0, 0], per_axis[:, None] * per_axis[None, :])


def test_ave_divisor_with_a_dropped_window():
    """H = 3, k = 2, s = 2, p = 1: two windows, [-1, 1) (1 pixel / 2) and [1, 3) (2 pixels / 2)."""
    pool = module_for(pool_text("AVE", 2, 2, 1))
    torch.testing.assert_close(pool(torch.ones(1, 1, 3, 3))[0, 0], t([[0.25, 0.5], [0.5, 1.0]]))


def test_max_window_past_the_end_gives_minus_flt_max():
    """No pad, k = 1, s = 3 on 5 pixels: Caffe keeps a third window starting at 6, which is empty."""
    pool = module_for(pool_text("MAX", 1, 3, 0))
    out = pool(t([[[[1, 2, 3, 4, 5]]]]).expand(1, 1, 5, 5))
    assert out.shape == (1, 1, 3, 3)
    assert out[0, 0, 0].tolist() == [1, 4, -FLT_MAX]


@pytest.mark.parametrize("ceil", [True, False])
@pytest.mark.parametrize("average", [False, True])
@pytest.mark.parametrize(("k", "s", "p"), [(2, 2, 0), (3, 2, 0), (3, 2, 1), (2, 2, 1), (3, 3, 2),
                                           (3, 1, 1), (2, 3, 0), (4, 2, 1), (5, 3, 2)])
def test_pooling_matches_caffe_loop(k, s, p, average, ceil):
    """Every size from 1 to 12, through whichever path (PyTorch's or explicit) the sizes select."""
    pool = module_for(pool_text("AVE" if average else "MAX", k, s, p, "CEIL" if ceil else "FLOOR"))
    generator = torch.Generator().manual_seed(k * 100 + s * 10 + p)
    for size in range(1, 13):
        x = torch.randn(1, 2, size, size + 1, generator=generator)
        if min(caffe_pooled_size(n, k, s, p, ceil, p > 0) for n in (size, size + 1)) < 1:
            with pytest.raises(ValueError, match="too small"):
                pool(x)
            continue
        expected = caffe_pool_loop(x.numpy(), k, s, p, average, ceil)
        ours = pool(x).numpy()
        assert ours.shape == expected.shape, size
        np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6, err_msg=f"size {size}")


def test_pooling_rectangular_and_global():
    pool = module_for('name: "p" type: "Pooling" pooling_param { pool: MAX kernel_h: 1 kernel_w: 3 '
                      'stride_h: 1 stride_w: 2 }')
    x = torch.arange(10.0).reshape(1, 1, 2, 5)
    assert pool(x).tolist() == [[[[2, 4], [7, 9]]]]
    glob = module_for('name: "g" type: "Pooling" pooling_param { pool: AVE global_pooling: true }')
    assert glob(x).tolist() == [[[[4.5]]]]


def test_pad_not_smaller_than_kernel_is_rejected():
    with pytest.raises(CaffeFormatError, match="pad"):
        module_for(pool_text("MAX", 2, 2, 2))


# ----------------------------------------------------------------------------- crop


def test_crop_is_top_left_from_the_offset():
    crop = module_for('name: "c" type: "Crop" bottom: "a" bottom: "b" crop_param { axis: 2 offset: 1 }')
    x = torch.arange(25.0).reshape(1, 1, 5, 5)
    assert crop(x, torch.zeros(1, 1, 2, 3)).tolist() == [[[[6, 7, 8], [11, 12, 13]]]]


def test_crop_one_offset_per_axis_from_axis_1():
    crop = module_for('name: "c" type: "Crop" bottom: "a" bottom: "b" crop_param { axis: 1 offset: 1 offset: 0 offset: 2 }')
    x = torch.arange(2 * 3 * 4 * 5.0).reshape(2, 3, 4, 5)
    torch.testing.assert_close(crop(x, torch.zeros(7, 2, 3, 2)), x[:, 1:3, 0:3, 2:4])


def test_crop_too_far_is_an_error():
    crop = module_for('name: "c" type: "Crop" bottom: "a" bottom: "b" crop_param { offset: 3 }')
    with pytest.raises(ValueError, match="exceeds"):
        crop(torch.zeros(1, 1, 5, 5), torch.zeros(1, 1, 3, 3))


OFFSETLESS_CROP = ('layer { name: "up" type: "Deconvolution" bottom: "x" top: "up" '
                   'convolution_param { num_output: 1 kernel_size: 5 bias_term: false } } '
                   'layer { name: "c" type: "Crop" bottom: "up" bottom: "x" top: "c" }')


def test_crop_without_offset_takes_the_geometric_one():
    """A CVPR-era Crop (no parameters, as asked for with crop_offsets="coord-map"): offset from the
    coordinate maps, here (k - 1) / 2 - p = 2."""
    model = net(OFFSETLESS_CROP, {"x": (1, 1, 4, 4)}, {"up": [np.ones((1, 1, 5, 5))]}, crop_offsets="coord-map")
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 0, 0] = 1  # the 5x5 ones kernel lands on up[0:5, 0:5]; the crop keeps up[2:6, 2:6]
    out = model(x)["c"][0, 0]
    assert out.tolist() == [[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 0], [0, 0, 0, 0]]


def test_modern_crop_without_offset_is_bvlc_zero_and_warns_with_the_geometric_one():
    with pytest.warns(UserWarning, match=r"Crop layer 'c' has no offset.*offset \[2, 2\].*coord-map"):
        model = net(OFFSETLESS_CROP, {"x": (1, 1, 4, 4)}, {"up": [np.ones((1, 1, 5, 5))]})
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 0, 0] = 1  # up[0:5, 0:5] holds the ones; BVLC keeps up[0:4, 0:4]
    assert model(x)["c"][0, 0].tolist() == [[1] * 4] * 4
    with pytest.raises(CaffeFormatError, match="crop_offsets"):
        net(OFFSETLESS_CROP, {"x": (1, 1, 4, 4)}, {"up": [np.ones((1, 1, 5, 5))]}, crop_offsets="centre")


def test_given_offset_differing_from_geometry_warns_and_is_used():
    with pytest.warns(UserWarning, match="differs"):
        model = net('layer { name: "up" type: "Deconvolution" bottom: "x" top: "up" '
                    'convolution_param { num_output: 1 kernel_size: 5 bias_term: false } } '
                    'layer { name: "c" type: "Crop" bottom: "up" bottom: "x" top: "c" '
                    'crop_param { offset: 0 } }',
                    {"x": (1, 1, 4, 4)}, {"up": [np.ones((1, 1, 5, 5))]})
    assert [step.module.offsets for step in model.layers() if step.name == "c"] == [(0,)]


# ----------------------------------------------------------------------------- convolutions


def test_convolution_rectangular_kernel_and_caffe_layout():
    conv = module_for('name: "c" type: "Convolution" convolution_param { num_output: 1 kernel_h: 1 '
                      'kernel_w: 2 pad_h: 0 pad_w: 1 }', [[[[1, 10]]]], [0.5])
    # padded row [0, 1, 2, 3, 0]: 1*0 + 10*1, 1*1 + 10*2, ...
    assert conv(t([[[[1, 2, 3]]]])).tolist() == [[[[10.5, 21.5, 32.5, 3.5]]]]
    assert conv.weight.shape == (1, 1, 1, 2) and conv.bias.shape == (1,)


def test_convolution_groups_use_contiguous_channel_blocks():
    weight = np.array([1, 2, 3, 4], np.float32).reshape(2, 2, 1, 1)  # (out, in/g, 1, 1), 4 in, g=2
    conv = module_for('name: "c" type: "Convolution" convolution_param { num_output: 2 kernel_size: 1 '
                      'group: 2 bias_term: false }', weight)
    x = t([1, 10, 100, 1000]).reshape(1, 4, 1, 1)
    assert conv(x).flatten().tolist() == [1 * 1 + 2 * 10, 3 * 100 + 4 * 1000]


def test_deconvolution_output_size_and_layout():
    # weight (C_in = 2, C_out = 3, 4, 4); output s(H - 1) + k - 2p = 2 * 4 + 4 - 2 = 10
    deconv = module_for('name: "d" type: "Deconvolution" convolution_param { num_output: 3 '
                        'kernel_size: 4 stride: 2 pad: 1 }', np.ones((2, 3, 4, 4)), np.zeros(3))
    assert deconv(torch.ones(1, 2, 5, 5)).shape == (1, 3, 10, 10)


def diagonal_weight(classes: int, k: int) -> np.ndarray:
    weight = np.zeros((classes, classes, k, k), np.float32)
    rng = np.random.default_rng(0)
    for i in range(classes):
        weight[i, i] = rng.random((k, k))
    return weight


def test_diagonal_deconvolution_takes_the_depthwise_path_with_the_same_numbers():
    weight = diagonal_weight(5, 4)
    deconv = module_for('name: "up" type: "Deconvolution" convolution_param { num_output: 5 '
                        'kernel_size: 4 stride: 2 bias_term: false }', weight)
    assert isinstance(deconv, Deconvolution) and deconv.is_diagonal()
    x = torch.randn(2, 5, 6, 7)
    with torch.inference_mode():
        fast = deconv(x)
    torch.testing.assert_close(fast, F.conv_transpose2d(x, torch.from_numpy(weight), stride=2))
    assert deconv.state_dict()["weight"].shape == (5, 5, 4, 4)  # Caffe's full layout is kept


def test_diagonal_check_follows_weight_changes():
    deconv = module_for('name: "up" type: "Deconvolution" convolution_param { num_output: 3 '
                        'kernel_size: 2 stride: 2 bias_term: false }', diagonal_weight(3, 2))
    assert deconv.is_diagonal()
    changed = deconv.state_dict()["weight"].clone()
    changed[0, 1, 0, 0] = 1e-30  # a single off-diagonal value rules the fast path out
    deconv.load_state_dict({"weight": changed})
    assert not deconv.is_diagonal()
    x = torch.randn(1, 3, 3, 3)
    with torch.no_grad():
        torch.testing.assert_close(deconv(x), F.conv_transpose2d(x, changed, stride=2))
    with torch.no_grad():
        deconv.weight.copy_(torch.from_numpy(diagonal_weight(3, 2)))
    assert deconv.is_diagonal()


def test_grouped_or_rectangular_deconvolution_is_not_diagonal():
    deconv = module_for('name: "up" type: "Deconvolution" convolution_param { num_output: 2 '
                        'kernel_size: 2 group: 2 bias_term: false }', np.ones((2, 1, 2, 2)))
    assert not deconv.is_diagonal()


# ----------------------------------------------------------------------------- other layers


def test_inner_product_flattens_from_axis_and_transposes():
    ip = module_for('name: "ip" type: "InnerProduct" inner_product_param { num_output: 2 }',
                    [[1, 0, 0, 0], [0, 0, 0, 1]], [10, 20])
    assert ip(torch.arange(8.0).reshape(2, 1, 2, 2)).tolist() == [[10, 23], [14, 27]]
    ipt = module_for('name: "ip" type: "InnerProduct" inner_product_param { num_output: 2 axis: 2 '
                     'transpose: true bias_term: false }', [[1, 0], [0, 0], [0, 1]])  # (in, out)
    assert ipt(torch.arange(6.0).reshape(1, 2, 3)).tolist() == [[[0, 2], [3, 5]]]


def test_eltwise_sum_with_coefficients_prod_and_max():
    a, b = t([1, -2]), t([3, 4])
    assert module_for('name: "e" type: "Eltwise" bottom: "a" bottom: "b" eltwise_param { '
                      'operation: SUM coeff: 0.5 coeff: -1 }')(a, b).tolist() == [-2.5, -5]
    assert module_for('name: "e" type: "Eltwise" bottom: "a" bottom: "b" eltwise_param { '
                      'operation: PROD }')(a, b).tolist() == [3, -8]
    assert module_for('name: "e" type: "Eltwise" bottom: "a" bottom: "b" eltwise_param { '
                      'operation: MAX }')(a, b).tolist() == [3, 4]


def test_batch_norm_divides_statistics_by_the_scale_factor():
    bn = module_for('name: "bn" type: "BatchNorm" batch_norm_param { eps: 0 }', [2], [8], [2])
    assert bn(t([5, 1]).reshape(2, 1)).flatten().tolist() == [2, 0]  # (x - 1) / sqrt(4)
    zero = module_for('name: "bn" type: "BatchNorm" batch_norm_param { eps: 0.25 }', [2], [8], [0])
    assert zero(t([3]).reshape(1, 1)).flatten().tolist() == [6]  # mean, var -> 0: 3 / sqrt(0.25)


def test_scale_by_blob_bottom_and_scalar():
    scale = module_for('name: "s" type: "Scale" scale_param { bias_term: true }', [2, 3], [1, 0])
    assert scale(torch.ones(1, 2, 1, 1)).flatten().tolist() == [3, 3]
    by_bottom = module_for('name: "s" type: "Scale" bottom: "x" bottom: "y" scale_param { axis: 0 }')
    assert by_bottom(torch.ones(2, 3), t([[1, 2, 3], [4, 5, 6]])).sum().item() == 21
    with_bias = module_for('name: "s" type: "Scale" bottom: "x" bottom: "y" scale_param { bias_term: true }',
                           [10, 20])
    assert list(with_bias.state_dict()) == ["bias"]  # the lone blob of a 2-bottom Scale is its bias
    assert with_bias(torch.ones(1, 2, 1, 1), t([2, 3])).flatten().tolist() == [12, 23]
    scalar = module_for('name: "s" type: "Scale" scale_param { num_axes: 0 }', np.array(4.0))
    assert scalar(torch.ones(2, 2)).tolist() == [[4, 4], [4, 4]]


def test_reshape_with_copy_and_inferred_dims():
    def reshape(spec: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(module_for(f'name: "r" type: "Reshape" reshape_param {{ {spec} }}')(torch.zeros(shape)).shape)

    assert reshape("shape { dim: 0 dim: -1 }", (2, 3, 4, 5)) == (2, 60)
    assert reshape("shape { dim: -1 } axis: 1 num_axes: 2", (2, 3, 4, 5)) == (2, 12, 5)
    assert reshape("shape { dim: 1 } axis: -1 num_axes: 0", (2, 3)) == (2, 3, 1)


def test_relu_slope_and_neurons():
    assert module_for('name: "r" type: "ReLU" relu_param { negative_slope: 0.5 }')(t([-2, 3])).tolist() == [-1, 3]
    assert module_for('name: "p" type: "Power" power_param { power: 2 scale: 2 shift: 1 }')(t([1])).tolist() == [9]
    assert module_for('name: "t" type: "Threshold" threshold_param { threshold: 1 }')(t([1, 2])).tolist() == [0, 1]
    out = module_for('name: "e" type: "Exp" exp_param { base: 2 scale: 1 shift: 1 }')(t([3]))
    assert math.isclose(out.item(), 16, rel_tol=1e-6)
    bnll = module_for('name: "b" type: "BNLL"')(t([0, 100, -100]))
    assert bnll.tolist() == pytest.approx([math.log(2), 100, math.exp(-100)], rel=1e-6)


def test_unknown_type_names_the_layer_and_what_is_supported():
    with pytest.raises(CaffeFormatError, match=r"layer 'odd'.*'Spp'.*Convolution"):
        module_for('name: "odd" type: "Spp"')
    assert {"Convolution", "Deconvolution", "Crop", "Pooling"} <= set(LAYER_BUILDERS)


def test_missing_weights_are_reported():
    with pytest.raises(CaffeFormatError, match="no weights"):
        module_for('name: "c" type: "Convolution" convolution_param { num_output: 1 kernel_size: 1 }')


# ----------------------------------------------------------------------------- runtime


RELU_NET = ('layer { name: "conv" type: "Convolution" bottom: "x" top: "conv" convolution_param '
            '{ num_output: 1 kernel_size: 1 bias_term: false } } '
            'layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" } '
            'layer { name: "relu_in" type: "ReLU" bottom: "x" top: "x" } '
            'layer { name: "crop" type: "Crop" bottom: "x" bottom: "conv" top: "crop" '
            'crop_param { offset: 0 } } '
            'layer { name: "relu_crop" type: "ReLU" bottom: "crop" top: "crop" } ')


def test_outputs_are_unconsumed_tops_and_inplace_blobs_hold_final_values():
    model = net(RELU_NET, {"x": (1, 1, 4, 4)}, {"conv": [[[[-1]]]]})
    assert model.output_names == ["crop"]  # conv is read by the crop
    relus = [step.module.inplace for step in model.layers() if step.name.startswith("relu")]
    assert relus == [True, False, False]  # only the ReLU on a fresh conv output works in place
    x = torch.arange(16.0).reshape(1, 1, 4, 4) - 8
    original = x.clone()
    blobs = model(x, all_blobs=True)
    assert set(blobs) == {"x", "conv", "crop"}
    torch.testing.assert_close(blobs["conv"], torch.relu(-original))  # after the in-place ReLU
    torch.testing.assert_close(blobs["x"], torch.relu(original))
    torch.testing.assert_close(blobs["crop"], torch.relu(original))
    torch.testing.assert_close(x, original)  # the caller's tensor is never written
    assert set(model(x=x)) == {"crop"}


def test_inputs_by_position_or_name_and_errors():
    model = net('layer { name: "add" type: "Eltwise" bottom: "a" bottom: "b" top: "sum" }',
                {"a": (1,), "b": (1,)})
    assert model(t([1]), b=t([2]))["sum"].tolist() == [3]
    with pytest.raises(TypeError, match="missing"):
        model(t([1]))
    with pytest.raises(TypeError, match="unknown"):
        model(t([1]), t([2]), c=t([3]))


def test_state_dict_keys_are_layer_and_blob_names():
    model = net('layer { name: "score-fr" type: "Convolution" bottom: "x" top: "s" convolution_param '
                '{ num_output: 2 kernel_size: 1 } } '
                'layer { name: "sc" type: "Scale" bottom: "s" top: "s" scale_param { bias_term: true } }',
                {"x": (1, 3, 2, 2)},
                {"score-fr": [np.ones((2, 3, 1, 1)), np.zeros(2)], "sc": [np.ones(2), np.zeros(2)]})
    assert list(model.state_dict()) == ["score-fr.weight", "score-fr.bias", "sc.weight", "sc.bias"]
    assert model(torch.ones(1, 3, 5, 7))["s"].shape == (1, 2, 5, 7)  # any input size


def test_repeated_names_are_allowed_only_without_weights():
    """The CVPR nets call three crops "crop"; two weighted layers with one name cannot be told apart."""
    model = net('layer { name: "r" type: "ReLU" bottom: "x" top: "a" } '
                'layer { name: "r" type: "ReLU" bottom: "a" top: "b" }', {"x": (1,)})
    assert [step.name for step in model.layers()] == ["r", "r"]
    with pytest.raises(CaffeFormatError, match="share this name"):
        net('layer { name: "c" type: "Convolution" bottom: "x" top: "a" convolution_param { num_output: 1 '
            'kernel_size: 1 } } layer { name: "c" type: "Convolution" bottom: "a" top: "b" '
            'convolution_param { num_output: 1 kernel_size: 1 } }', {"x": (1, 1, 1, 1)},
            {"c": [np.ones((1, 1, 1, 1)), np.zeros(1)]})


# ----------------------------------------------------------------------------- fast paths


def conv_module(cin: int, cout: int, k: int, pad: int = 0, stride: int = 1, seed: int = 0) -> torch.nn.Module:
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((cout, cin, k, k)) / math.sqrt(cin * k * k)
    return module_for(f'name: "c" type: "Convolution" convolution_param {{ num_output: {cout} kernel_size: {k} '
                      f'pad: {pad} stride: {stride} }}', weight, rng.standard_normal(cout))


def reference(conv: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    w, b = conv.weight.detach().double(), conv.bias.detach().double()
    return F.conv2d(x.detach().double(), w, b, conv.stride, conv.padding)


def rel(y: torch.Tensor, ref: torch.Tensor) -> float:
    return float((y.double() - ref).abs().max() / ref.abs().max())


@pytest.mark.parametrize("onednn", [True, False])
@pytest.mark.parametrize(("cin", "cout", "k", "size"), [(5, 7, 1, 6), (6, 9, 3, 8), (4, 3, 7, 7), (3, 2, 2, 5)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_unpadded_convolution_as_gemm(monkeypatch, fake_timer, onednn, cin, cout, k, size, channels_last):
    import convert.gemm as gemm

    fake_timer({"gemm": 1.0})  # measured fastest: then it must be taken, and compute the same

    if not onednn:  # a torch without the private oneDNN op falls back to F.linear
        monkeypatch.setattr(gemm, "_linear_op", None)
    elif gemm.onednn_linear() is None:
        pytest.skip("this torch has no oneDNN linear op")
    conv = conv_module(cin, cout, k)
    x = torch.randn(2, cin, size, size + 1)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert conv.path(x) == "gemm"
        y = conv(x)
    assert y.shape == (2, cout, size - k + 1, size - k + 2) and y.dtype == torch.float32
    assert rel(y, reference(conv, x)) < 1e-6


def test_onednn_probe_rejects_a_missing_or_broken_op():
    from types import SimpleNamespace

    from convert.gemm import probe_onednn_linear

    assert probe_onednn_linear(SimpleNamespace()) is None

    def broken(*args):
        raise RuntimeError("no kernel for this build")
    assert probe_onednn_linear(SimpleNamespace(_linear_pointwise=broken)) is None
    wrong = SimpleNamespace(_linear_pointwise=lambda a, w, b, *rest: a @ w.T)  # ignores the bias
    assert probe_onednn_linear(wrong) is None


def test_fast_paths_only_for_cpu_fp32_inference(fake_timer):
    fake_timer({"gemm": 1.0, "conv2d": 2.0}, default=3.0)  # GEMM wins where allowed, others lose
    gemm_conv = conv_module(4, 4, 1)
    x = torch.randn(1, 4, 5, 5)
    assert gemm_conv.path(x) == "conv2d"  # grad mode on and the weight requires grad
    y = gemm_conv(x)
    y.sum().backward()  # training keeps F.conv2d and its backward
    assert gemm_conv.weight.grad is not None
    with torch.no_grad():
        assert gemm_conv.path(x) == "gemm"
        assert gemm_conv.path(x.double()) == "conv2d"
        assert gemm_conv.path(torch.randn(1, 4, 0, 5)) == "conv2d"
    gemm_conv.requires_grad_(False)
    assert gemm_conv.path(x) == "gemm"  # frozen weights: no grad needed either
    assert gemm_conv.path(x.requires_grad_()) == "conv2d"
    with torch.no_grad():
        assert conv_module(4, 4, 3, pad=0, stride=2).path(x) == "conv2d"
        assert conv_module(4, 4, 7).path(x) == "conv2d"  # smaller than the kernel: PyTorch's error
        assert conv_module(4, 4, 3, pad=1).path(x) == "conv2d"  # Winograd measured slower
        with pytest.raises(RuntimeError):
            conv_module(4, 4, 7)(x)


def test_winograd_for_wide_3x3_layers_follows_weight_changes(monkeypatch, fake_timer):
    from convert import tuning

    fake_timer({"winograd": 1.0})  # chosen (timing and accuracy gate set aside: tested elsewhere),
    monkeypatch.setattr(tuning, "ACCURACY_FACTOR", math.inf)  # its transform must follow the weight
    conv = conv_module(512, 512, 3, pad=1, seed=1)
    x = torch.relu(torch.randn(1, 512, 9, 7)).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert conv.path(x) == "winograd"
        y = conv(x)
        assert rel(y, reference(conv, x)) < 1e-5
        assert y.is_contiguous(memory_format=torch.channels_last)
        state = conv_module(512, 512, 3, pad=1, seed=2).state_dict()
        conv.load_state_dict(state)  # in place: the cached transform must be recomputed
        assert rel(conv(x), reference(conv, x)) < 1e-5
        conv.weight.mul_(-1)
        assert rel(conv(x), reference(conv, x)) < 1e-5
    assert set(conv.state_dict()) == {"weight", "bias"}  # the transform is no state
    with torch.inference_mode():
        frozen = conv_module(512, 512, 3, pad=1, seed=3)  # inference tensors: writes untraceable
        assert frozen.path(x) == "conv2d"


def test_runtime_runs_channels_last_and_returns_nchw():
    text = ('layer { name: "fc" type: "Convolution" bottom: "x" top: "fc" convolution_param '
            '{ num_output: 6 kernel_size: 3 } } '
            'layer { name: "relu" type: "ReLU" bottom: "fc" top: "fc" } '
            'layer { name: "score" type: "Convolution" bottom: "fc" top: "score" convolution_param '
            '{ num_output: 2 kernel_size: 1 } } '
            'layer { name: "crop" type: "Crop" bottom: "x" bottom: "score" top: "crop" '
            'crop_param { axis: 2 offset: 1 } } ')  # a view of the input: not contiguous
    rng = np.random.default_rng(0)
    blobs = {"fc": [rng.standard_normal((6, 4, 3, 3)), rng.standard_normal(6)],
             "score": [rng.standard_normal((2, 6, 1, 1)), rng.standard_normal(2)]}
    model = net(text, {"x": (1, 4, 8, 8)}, blobs)
    x = torch.randn(2, 4, 9, 11)
    ref = model(x, all_blobs=True)  # grad mode: plain NCHW F.conv2d
    with torch.no_grad():
        assert model.channels_last_for({"x": x})
        fast = model(x, all_blobs=True)
        out = model(x)
        model.use_channels_last = False
        plain = model(x)
    assert set(out) == {"crop"} and set(fast) == set(ref)
    assert not plain["crop"].is_contiguous()  # the caller's layout, as before
    for name, value in (*fast.items(), *out.items()):
        assert value.is_contiguous(), name
        torch.testing.assert_close(value, ref[name].detach(), rtol=1e-5, atol=1e-5)
    assert not model.channels_last_for({"x": x.double()})
