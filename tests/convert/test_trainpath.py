"""The training paths (convert.trainpath): every path's output and gradients against float64
``F.conv2d`` autograd; the measured, accuracy-gated choice; where no path applies, plain F.conv2d."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from convert import fastpath, trainpath, tuning
from convert.coord_map import WindowGeometry
from convert.modules import Convolution
from fcn_ref.blocks import Conv2d

# (in, out, kernel, pad, side, bias): 3x3 with every pad Winograd takes, fc6-like 7x7 and 1x1 unpadded,
# an image's first layer (patches no wider than the output: "channels_last_output").
GEOMETRIES = [(5, 7, 3, 1, 13, True), (5, 7, 3, 0, 9, True), (4, 6, 3, 2, 8, False), (6, 8, 7, 0, 10, True),
              (6, 8, 1, 0, 9, True), (6, 8, 1, 0, 9, False), (3, 27, 3, 4, 11, True)]


def _conv(cin: int, cout: int, k: int, pad: int, bias: bool, seed: int = 0) -> Conv2d:
    torch.manual_seed(seed)
    return Conv2d(cin, cout, k, padding=pad, bias=bias)


def _float64_step(conv, x: torch.Tensor, grad: torch.Tensor) -> list[torch.Tensor]:
    leaf = x.double().requires_grad_(True)
    params = [conv.weight.detach().double().requires_grad_(True)]
    if conv.bias is not None:
        params.append(conv.bias.detach().double().requires_grad_(True))
    y = F.conv2d(leaf, params[0], params[1] if conv.bias is not None else None, conv.stride, conv.padding)
    return [y.detach(), *torch.autograd.grad(y, [leaf, *params], grad.double())]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_every_path_gives_the_float64_output_and_gradients(geometry, layout):
    cin, cout, k, pad, side, bias = geometry
    conv = _conv(cin, cout, k, pad, bias)
    x = torch.randn(2, cin, side, side).requires_grad_(True)
    if layout == "channels_last":
        x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    names = trainpath.candidates(conv, x)
    assert trainpath.BASELINE in names and len(names) >= 2
    if k == 3 and pad <= 2:
        assert {"winograd", "winograd_weight_gradient"} <= set(names)
    if pad == 0:
        assert "gemm" in names
    assert ("channels_last_output" in names) == (cin * k * k <= cout)
    for name in names:
        y, *grads = trainpath._forward_backward(conv, trainpath.PATHS[name], x, trainpath._OutputGrads())
        expected = _float64_step(conv, x, trainpath._output_grad(y.shape, torch.float64))
        assert len(grads) + 1 == len(expected)
        for got, want in zip([y, *grads], expected):
            assert got.shape == want.shape
            assert _rel(got, want) < (2e-5 if name == "winograd" else 2e-6), name


@pytest.mark.parametrize("input_grad", [True, False])
@pytest.mark.parametrize("stride, padding, dilation", [(1, (100, 100), 1), (2, (1, 0), 1), (3, (2, 2), 2)])
def test_channels_last_output_in_bands_gives_the_float64_step(stride, padding, dilation, input_grad, monkeypatch):
    """The image's layer written in channels_last from an NCHW input, its weight and bias gradients
    summed over bands of output rows (a few rows a band here), any stride, padding and dilation."""
    monkeypatch.setattr(trainpath, "IM2COL_BAND_BYTES", 2 * 27 * 4 * 9)
    torch.manual_seed(1)
    conv = Conv2d(3, 32, 3, stride=stride, padding=padding, dilation=dilation)
    x = torch.randn(2, 3, 17, 14)
    assert "channels_last_output" in trainpath.candidates(conv, x.requires_grad_(input_grad))
    y, *grads = trainpath._forward_backward(conv, trainpath.PATHS["channels_last_output"], x,
                                            trainpath._OutputGrads(), input_grad)
    assert fastpath.is_channels_last(y)
    leaf = x.detach().double().requires_grad_(True)
    w, b = (p.detach().double().requires_grad_(True) for p in (conv.weight, conv.bias))
    y64 = F.conv2d(leaf, w, b, conv.stride, conv.padding, conv.dilation)
    expected = torch.autograd.grad(y64, [leaf, w, b], trainpath._output_grad(y.shape, torch.float64))
    expected = [y64.detach(), *(expected if input_grad else expected[1:])]
    assert len(grads) + 1 == len(expected)
    for got, want in zip([y, *grads], expected):
        assert got.shape == want.shape and _rel(got, want) < 2e-6


def test_channels_last_output_with_a_frozen_weight_sums_the_bias_gradient_only(monkeypatch):
    """A frozen weight with a learned bias: the bias gradient is float64's, and no weight gradient
    is computed (the banded GEMMs are the path's costliest part)."""
    monkeypatch.setattr(trainpath, "_weight_gradient_by_bands", lambda *a: pytest.fail("weight gradient computed"))
    torch.manual_seed(2)
    conv = Conv2d(3, 32, 3, padding=4)
    conv.weight.requires_grad_(False)
    x = torch.randn(1, 3, 15, 11)
    y = trainpath.PATHS["channels_last_output"](conv, x)
    probe = torch.randn(y.shape)
    grad_b, = torch.autograd.grad(y, [conv.bias], probe)
    assert y.shape[1:] == (32, 21, 17) and _rel(grad_b, probe.double().sum((0, 2, 3))) < 1e-6


def test_a_layout_change_is_handed_back_to_the_layer_producing_it(fake_timer, monkeypatch):
    """A layer that converts its input to the other layout records it; the layer producing such
    an activation is then measured again, its candidates timed handing their output on converted
    (so one writing that layout itself does not pay for it), and the choice is kept."""
    fake_timer({"channels_last_output": 0.1})
    monkeypatch.setattr(tuning, "ACCURACY_FACTOR", float("inf"))
    first, second = _conv(3, 27, 3, 1, True), _conv(27, 8, 3, 1, True)
    image = torch.randn(1, 3, 12, 12)
    assert trainpath.path(first, image) == "channels_last_output"
    monkeypatch.setitem(trainpath.PATHS, "channels_last_output", trainpath.PATHS[trainpath.BASELINE])
    hidden = trainpath.convolution(first, image)  # NCHW (the path now stands for the baseline)
    assert tuning.handoff(trainpath._described(hidden)) is None
    fake_timer({"autograd_channels_last": 0.1})
    assert fastpath.is_channels_last(trainpath.convolution(second, hidden))
    assert tuning.handoff(trainpath._described(hidden)) == "channels_last"
    handed, timed = [], []
    hand_on = trainpath._handed_on
    monkeypatch.setattr(trainpath, "_handed_on", lambda y: handed.append(hand_on(y)) or handed[-1])
    monkeypatch.setattr(tuning, "time_candidates",
                        lambda runs: timed.extend(runs) or {name: run() and 1.0 for name, run in runs.items()})
    assert trainpath.path(first, image) == trainpath.BASELINE  # measured again (all tie here)
    assert sorted(timed) == sorted(trainpath.candidates(first, image))
    assert handed and all(fastpath.is_channels_last(y) for y in handed)
    timed.clear()
    trainpath.path(first, image)
    assert timed == []
    y = torch.randn(1, 5, 4, 4)
    assert trainpath._handed_on(y) is y  # nothing recorded for this shape


def test_reference_in_channel_blocks_equals_one_piece(monkeypatch):
    """The float64 reference splits large weights by output channels; the pieces add up exactly."""
    conv = _conv(6, 8, 3, 1, True)
    x = torch.rand(1, 6, 7, 7, dtype=torch.float64)
    whole = trainpath._reference(conv, x)
    monkeypatch.setattr(trainpath, "REFERENCE_BLOCK_BYTES", 6 * 9 * 8 * 3)  # three channels a block
    pieces = trainpath._reference(conv, x)
    for a, b in zip(whole, pieces):
        assert torch.allclose(a, b, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("module", ["zoo", "runtime"])
@pytest.mark.parametrize("fast", ["gemm", "winograd", "winograd_weight_gradient", "autograd_channels_last",
                                  "channels_last_output"])
def test_the_measured_choice_runs_in_training(module, fast, fake_timer, monkeypatch):
    """With the path timed fastest (and the gate off, so it is forced), a training call takes it
    (zoo ``Conv2d`` and the runtime's ``Convolution`` alike), and gradients still match float64."""
    fake_timer({fast: 0.1})
    monkeypatch.setattr(tuning, "ACCURACY_FACTOR", float("inf"))
    k, pad = (1, 0) if fast == "gemm" else (3, 1)
    cin = 2 if fast == "channels_last_output" else 6  # that path is for narrow inputs (images)
    conv = _conv(cin, 24 if fast == "channels_last_output" else 8, k, pad, True)
    if module == "runtime":
        runtime = Convolution(WindowGeometry((k, k), (1, 1), (pad, pad)), 1)
        runtime.weight, runtime.bias = conv.weight, conv.bias
        conv = runtime
    x = torch.randn(1, cin, 11, 11, requires_grad=True)
    taken = []
    monkeypatch.setitem(trainpath.PATHS, fast, lambda c, y, run=trainpath.PATHS[fast]: taken.append(1) or run(c, y))
    out = conv(x)
    assert taken and trainpath.path(conv, x) == fast
    g = torch.randn(out.shape)
    out.backward(g)
    expected = _float64_step(conv, x.detach(), g)
    for got, want in zip([out.detach(), x.grad, conv.weight.grad, conv.bias.grad], expected):
        assert _rel(got, want) < 2e-5


@pytest.mark.parametrize(("seconds", "expected"), [(0.94, "winograd_weight_gradient"), (0.96, "autograd")])
def test_a_training_path_must_take_at_most_95_percent_of_the_baseline(seconds, expected, fake_timer):
    """Timed forward and backward together, a faster weight gradient is a small share: the margin
    is 0.95 (the inference paths ask 0.9)."""
    fake_timer({"autograd": 1.0, "winograd_weight_gradient": seconds}, default=5.0)
    x = torch.randn(1, 6, 11, 11, requires_grad=True)
    assert trainpath.path(_conv(6, 8, 3, 1, True), x) == expected


def test_the_gate_refuses_an_inaccurate_path(fake_timer, monkeypatch):
    """A path that is fast but wrong in one gradient only is never chosen (the gate is per tensor)."""
    fake_timer({"gemm": 0.1})

    class _Scaled(torch.autograd.Function):  # right output, input gradient off by 1e-4
        @staticmethod
        def forward(ctx, y):
            return y.clone()

        @staticmethod
        def backward(ctx, g):
            return g * (1 + 1e-4)

    def bad_gemm(conv, x):
        return _Scaled.apply(trainpath._gemm(conv, x))

    monkeypatch.setitem(trainpath.PATHS, "gemm", bad_gemm)
    conv = _conv(6, 8, 1, 0, True)
    x = torch.randn(1, 6, 11, 11, requires_grad=True)
    assert "gemm" in trainpath.candidates(conv, x)
    assert trainpath.path(conv, x) != "gemm"


def test_choice_is_measured_once_while_the_weights_change(fake_timer, monkeypatch):
    """Training changes the weights every step; the layer keeps its choice (no re-measuring)."""
    fake_timer({"gemm": 0.1})
    timed = []
    monkeypatch.setattr(tuning, "time_candidates",
                        lambda runs: timed.extend(runs) or {name: 0.1 if name == "gemm" else 2.0 for name in runs})
    conv = _conv(6, 8, 1, 0, True)
    x = torch.randn(1, 6, 11, 11, requires_grad=True)
    for _ in range(3):
        conv(x).sum().backward()
        with torch.no_grad():
            conv.weight.sub_(0.01 * conv.weight.grad)
    assert trainpath.path(conv, x) == "gemm"
    assert sorted(timed) == sorted(set(timed))  # each candidate timed once


@pytest.mark.parametrize("case", ["no_grad", "frozen_input_and_weights", "exact", "float64"])
def test_plain_conv2d_where_no_training_path_applies(case, fake_timer):
    fake_timer({"gemm": 0.1, "winograd": 0.1, "autograd_channels_last": 0.1})
    conv = _conv(5, 7, 3, 1, True)
    x = torch.randn(1, 5, 12, 12, requires_grad=case != "frozen_input_and_weights")
    if case == "frozen_input_and_weights":
        conv.requires_grad_(False)
    if case == "exact":
        fastpath.set_exact(conv)
    if case == "float64":
        conv.double()
        x = x.detach().double().requires_grad_(True)
    with torch.set_grad_enabled(case != "no_grad"):
        assert not trainpath.applies(conv, x) and trainpath.path(conv, x) == trainpath.BASELINE
        got = conv(x)
    assert torch.equal(got, F.conv2d(x, conv.weight, conv.bias, 1, 1))


def test_small_layers_are_not_measured(monkeypatch):
    """Under fastpath.MIN_MEASURED_FLOPS the baseline runs unmeasured (the test fixtures' nets)."""
    monkeypatch.setattr(tuning, "time_candidates", lambda runs: pytest.fail("measured"))
    conv = _conv(5, 7, 3, 1, True)
    x = torch.randn(1, 5, 12, 12, requires_grad=True)
    assert trainpath.path(conv, x) == trainpath.BASELINE


def test_measuring_draws_each_output_gradient_once_in_the_outputs_layout(monkeypatch):
    """The timed runs reuse the output gradient (drawing it would be timed with every candidate)
    and each candidate's backward gets it in its own output's layout, as a net hands it back."""
    monkeypatch.setenv("FCN_FASTPATH_CACHE", "off")
    monkeypatch.setattr(tuning, "_memory", {})
    monkeypatch.setattr(fastpath, "MIN_MEASURED_FLOPS", 0)
    monkeypatch.setattr(tuning, "TIMING_REPEATS", 2)
    drawn, layouts = [], []
    draw = trainpath._output_grad
    monkeypatch.setattr(trainpath, "_output_grad", lambda shape, dtype: drawn.append(dtype) or draw(shape, dtype))
    run_in_layout = trainpath.PATHS["autograd_channels_last"]

    def recording(conv, x):
        y = run_in_layout(conv, x)
        y.register_hook(lambda g: layouts.append(fastpath.is_channels_last(g)))
        return y

    monkeypatch.setitem(trainpath.PATHS, "autograd_channels_last", recording)
    conv = _conv(5, 7, 3, 1, True)
    trainpath.path(conv, torch.randn(1, 5, 12, 12, requires_grad=True))
    # float32: one draw per output shape and layout (the probe is as large as the input here, so
    # one shape: NCHW and channels_last), none in the timed runs; float64: the reference's own
    assert drawn.count(torch.float32) == 2
    assert layouts == [True] * (1 + 1 + 2)  # the accuracy run, a warm-up, 2 timed rounds
    grads = trainpath._OutputGrads()
    y = torch.empty(1, 3, 4, 5)
    nchw, cl = grads(y), grads(y.contiguous(memory_format=torch.channels_last))
    assert grads(y) is nchw and fastpath.is_channels_last(cl) and torch.equal(cl, nchw)


def test_a_first_layer_is_timed_without_the_input_gradient_it_never_needs(monkeypatch):
    """The image needs no gradient: the first layer's candidates are timed without computing
    one (and that timing is kept apart from a layer of the same shape that needs it)."""
    monkeypatch.setenv("FCN_FASTPATH_CACHE", "off")
    monkeypatch.setattr(tuning, "_memory", {})
    monkeypatch.setattr(fastpath, "MIN_MEASURED_FLOPS", 0)
    flags = []
    step = trainpath._forward_backward
    monkeypatch.setattr(trainpath, "_forward_backward",
                        lambda conv, run, x, grads, input_grad=True, hand_on=None: flags.append(input_grad) or
                        step(conv, run, x, grads, input_grad, hand_on))
    conv = _conv(5, 7, 3, 1, True)
    image = torch.randn(1, 5, 12, 12)
    trainpath.path(conv, image)
    checked = len(trainpath.candidates(conv, image))  # the accuracy runs come first, with dx
    assert flags[:checked] == [True] * checked and len(flags) > checked and not any(flags[checked:])
    flags.clear()
    trainpath.path(conv, torch.randn(1, 5, 12, 12, requires_grad=True))
    assert flags and all(flags)  # the same shape with an input gradient: timed again, with it


def test_a_channels_last_convolution_with_its_weight_converted_gives_the_same_bits():
    """The baseline hands oneDNN the weight in the input's layout (saving its own conversions):
    output and every gradient equal plain F.conv2d's bit for bit."""
    conv = _conv(16, 24, 3, 1, True)
    x = torch.randn(2, 16, 19, 23).contiguous(memory_format=torch.channels_last)
    grad = torch.randn(2, 24, 19, 23).contiguous(memory_format=torch.channels_last)
    results = []
    for run in (trainpath.PATHS[trainpath.BASELINE],
                lambda c, t: F.conv2d(t, c.weight, c.bias, c.stride, c.padding)):
        leaf = x.detach().requires_grad_(True)
        y = run(conv, leaf)
        results.append([y.detach(), *torch.autograd.grad(y, [leaf, conv.weight, conv.bias], grad)])
    for got, want in zip(*results, strict=True):
        assert torch.equal(got, want)
    assert results[0][2].shape == conv.weight.shape


def test_accuracy_probe_keeps_the_first_output_channels_of_wide_layers():
    """fc6-like layers are checked on their first ACCURACY_MAX_OUTPUTS output channels (real
    weights, geometry and inputs), so the first step does not hold float64 copies of a 411 MB blob."""
    wide = Conv2d(3, trainpath.ACCURACY_MAX_OUTPUTS + 44, 3, padding=1)
    probe = trainpath._accuracy_probe(wide)
    assert probe.weight.shape == (trainpath.ACCURACY_MAX_OUTPUTS, 3, 3, 3)
    assert torch.equal(probe.weight, wide.weight[:trainpath.ACCURACY_MAX_OUTPUTS])
    assert torch.equal(probe.bias, wide.bias[:trainpath.ACCURACY_MAX_OUTPUTS])
    assert (probe.stride, probe.padding, probe.groups) == (wide.stride, wide.padding, wide.groups)
    grouped = Conv2d(4, trainpath.ACCURACY_MAX_OUTPUTS + 44, 3, groups=2)
    assert trainpath._accuracy_probe(grouped).weight.shape == grouped.weight.shape
