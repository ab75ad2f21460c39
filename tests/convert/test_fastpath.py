"""The fast-path policy (convert.fastpath): exact mode, the measured choice inside a net, shape buckets."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import convert
from conftest import FIXTURES, fixture_cases, rel_error
from convert import fastpath
from convert.checkpoint import save_checkpoint
from convert.coord_map import WindowGeometry
from convert.modules import Convolution, Deconvolution
from convert.reader import read_net

# Every fast path "measures" 10x faster than its baseline: whatever runs is what the policy allows.
FAST = {"gemm": 0.1, "winograd": 0.1, "winograd_f2": 0.2, "conv2d_channels_last": 0.3, "conv2d_nchw": 0.3,
        "depthwise": 0.1}


def files(case: str):
    return FIXTURES / case / "net.caffemodel", FIXTURES / case / "net.prototxt"


def record_layers(model: torch.nn.Module, x: torch.Tensor) -> list[tuple[torch.nn.Module, torch.Tensor, torch.Tensor]]:
    """(module, input, output) of every convolution and deconvolution in one inference call
    (copies: in-place ReLUs overwrite the outputs later)."""
    seen = []
    hooks = [m.register_forward_hook(lambda m, args, out: seen.append((m, args[0].clone(), out.clone())))
             for m in model.modules() if isinstance(m, (Convolution, Deconvolution))]
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def plain(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    if isinstance(module, Convolution):
        return F.conv2d(x, module.weight, module.bias, module.stride, module.padding, module.dilation,
                        module.groups)
    return F.conv_transpose2d(x, module.weight, module.bias, module.stride, module.padding, 0, module.groups,
                              module.dilation)


def test_exact_equals_plain_convolutions_bit_for_bit(fake_timer):
    fake_timer(FAST, default=1.0)
    x = torch.randn(1, 3, 37, 45)
    exact = convert.load_caffe(*files("voc-fcn8s"), exact=True)
    layers = record_layers(exact, x)
    assert len(layers) > 15
    for module, given, out in layers:
        assert given.is_contiguous() and out.is_contiguous()  # no layout changes either
        with torch.no_grad():
            assert torch.equal(out, plain(module, given)), module
    fast = convert.load_caffe(*files("voc-fcn8s"))  # the same net without exact takes fast paths
    with torch.no_grad():
        taken = {module.path(given) for module, given, _ in record_layers(fast, x)}
    assert taken - {"conv2d", "conv_transpose2d"}, taken


def test_exact_reaches_every_loader(tmp_path):
    save_checkpoint(read_net(*files("voc-fcn8s")), tmp_path / "m.pth", architecture=None, source={"file": "x"})
    for model in (convert.load_caffe(*files("voc-fcn8s"), exact=True), convert.load(tmp_path / "m.pth", exact=True)):
        flags = [m.fast_paths for m in model.modules() if hasattr(m, "fast_paths")]
        assert flags and not any(flags)
    assert all(m.fast_paths for m in convert.load(tmp_path / "m.pth").modules() if hasattr(m, "fast_paths"))


def test_set_exact_turns_the_depthwise_deconvolution_off_and_on(fake_timer):
    fake_timer(FAST, default=1.0)
    deconv = Deconvolution(WindowGeometry((4, 4), (2, 2)), groups=1)
    weight = torch.zeros(3, 3, 4, 4)
    weight[range(3), range(3)] = torch.rand(3, 4, 4)
    deconv.weight = torch.nn.Parameter(weight, requires_grad=False)
    x = torch.randn(1, 3, 9, 8)
    container = torch.nn.Sequential(deconv)
    assert deconv.path(x) == "depthwise"
    fastpath.set_exact(container)
    assert deconv.path(x) == "conv_transpose2d"
    assert torch.equal(container(x), F.conv_transpose2d(x, weight, stride=2))
    fastpath.set_exact(container, False)
    assert deconv.path(x) == "depthwise"


@pytest.mark.parametrize("case", ["voc-fcn8s", "voc-fcn-alexnet"])
def test_every_choice_the_policy_can_make_keeps_parity(case, fake_timer):
    """With every fast path 'measured' fastest on every layer (the real accuracy gate deciding which
    may run), every blob stays within the parity budget of Caffe's."""
    import h5py

    fake_timer(FAST, default=1.0)
    model = convert.load_caffe(*files(case))
    with h5py.File(FIXTURES / case / "reference.h5", "r") as f:
        inputs = {k: torch.from_numpy(f["inputs"][k][...]) for k in f["inputs"]}
        expected = {k: f["blobs"][k][...] for k in f["blobs"]}
    with torch.no_grad():
        ours = model(**inputs, all_blobs=True)
    for name, value in ours.items():
        if name in expected:
            assert rel_error(value.numpy(), expected[name]) <= 1e-5, name


def test_size_buckets_group_similar_areas_only():
    assert fastpath.size_bucket(500, 375) == fastpath.size_bucket(500, 400)
    assert fastpath.size_bucket(500, 500) != fastpath.size_bucket(500, 250)


@pytest.mark.slow
@pytest.mark.parametrize("case", fixture_cases())
def test_every_fixture_matches_caffe_with_real_measurement_on_every_layer(case, monkeypatch, tmp_path):
    """Real timings on this machine, every layer measured (no minimum size): every blob within budget."""
    import h5py

    from convert import tuning

    monkeypatch.setenv(tuning.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(tuning, "_memory", {})
    monkeypatch.setattr(fastpath, "MIN_MEASURED_FLOPS", 0)
    folder = FIXTURES / case
    if not (folder / "net.caffemodel").exists():
        pytest.skip("no caffemodel")
    model = convert.load_caffe(folder / "net.caffemodel", folder / "net.prototxt")
    with h5py.File(folder / "reference.h5", "r") as f:
        inputs = {k: torch.from_numpy(f["inputs"][k][...]) for k in f["inputs"]}
        expected = {k: f["blobs"][k][...] for k in f["blobs"]}
    with torch.no_grad():
        ours = model(**inputs, all_blobs=True)
    for name, value in ours.items():
        if name in expected and np.issubdtype(expected[name].dtype, np.floating):
            assert rel_error(value.numpy(), expected[name]) <= 1e-5, name
