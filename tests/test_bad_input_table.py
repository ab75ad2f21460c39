"""Every bad input of issue 12's list, through the command lines: exit 1, one line naming the file,
no traceback, no output (or temporary) file left, and the input untouched."""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import FIXTURES, ROOT
from convert.checkpoint import sealed
from convert.schema import NetParameter

MODEL = FIXTURES / "layer-conv-group" / "net.caffemodel"
FCN8S = FIXTURES / "voc-fcn8s"


def conv_net(**conv) -> bytes:
    """A one-convolution caffemodel with the given convolution_param fields (a 2x3x1x1 weight)."""
    net = NetParameter(name="tiny")
    net.input.append("data")
    net.input_shape.add().dim.extend([1, 4, 5, 5])
    layer = net.layer.add(name="conv", type="Convolution", bottom=["data"], top=["conv"])
    layer.convolution_param.num_output = 2
    layer.convolution_param.kernel_size.append(1)
    layer.convolution_param.bias_term = False
    for key, value in conv.items():
        setattr(layer.convolution_param, key, value)
    blob = layer.blobs.add()
    blob.shape.dim.extend([2, 4, 1, 1])
    blob.data.extend(np.arange(8, dtype=np.float32))
    return net.SerializeToString()


@dataclass
class Case:
    """Files to make in a folder, the command to run there, and what the error must name."""

    files: Callable[[Path], dict[str, bytes]]
    argv: Callable[[Path], list[str]]
    names: Callable[[Path], list[str]]
    cli: str = "convert"
    no_output: list[str] = field(default_factory=lambda: ["out.pth"])


def _blob_overflow(tmp: Path) -> dict[str, bytes]:
    net = NetParameter()
    net.ParseFromString(conv_net())
    del net.layer[0].blobs[0].data[:]
    del net.layer[0].blobs[0].shape.dim[:]
    net.layer[0].blobs[0].shape.dim.extend([2**32, 2**32])
    return {"m.caffemodel": net.SerializeToString()}


def _non_utf8_type(tmp: Path) -> dict[str, bytes]:
    data = conv_net()
    return {"m.caffemodel": data.replace(b"Convolution", b"Convol\xff\xfeion")}


def _hdf5(mutate: Callable[[h5py.File], None]) -> Callable[[Path], dict[str, bytes]]:
    def make(tmp: Path) -> dict[str, bytes]:
        buf = io.BytesIO((FCN8S / "net.caffemodel.h5").read_bytes())
        with h5py.File(buf, "r+") as f:
            mutate(f)
        return {"w.caffemodel.h5": buf.getvalue(), "net.prototxt": (FCN8S / "net.prototxt").read_bytes()}
    return make


def _string_dataset(f: h5py.File) -> None:
    del f["data/conv1_1/0"]
    f["data/conv1_1"].create_dataset("0", data=np.array([b"abc"] * 3))


def _duplicate_weighted_names(tmp: Path) -> dict[str, bytes]:
    net = NetParameter()
    net.ParseFromString(conv_net())
    second = net.layer.add()
    second.CopyFrom(net.layer[0])
    second.bottom[0] = "conv"
    second.top[0] = "conv2"
    second.blobs[0].shape.dim[1] = 2
    del second.blobs[0].data[4:]
    return {"m.caffemodel": net.SerializeToString()}


CONVERT_CASES = {
    "blob shape overflows int64": Case(_blob_overflow, lambda t: ["m.caffemodel", "-o", "out.pth"],
                                       lambda t: ["m.caffemodel"]),
    "group 0": Case(lambda t: {"m.caffemodel": conv_net(group=0)}, lambda t: ["m.caffemodel", "-o", "out.pth"],
                    lambda t: ["m.caffemodel", "conv", "group"]),
    "stride 0": Case(lambda t: {"m.caffemodel": conv_net(stride_h=0, stride_w=1)},
                     lambda t: ["m.caffemodel", "-o", "out.pth"], lambda t: ["m.caffemodel", "conv", "stride"]),
    "HDF5 non-integer dataset key": Case(
        _hdf5(lambda f: f["data/conv1_1"].create_dataset("weights", data=np.zeros(2, np.float32))),
        lambda t: ["w.caffemodel.h5", "--prototxt", "net.prototxt", "-o", "out.pth"],
        lambda t: ["w.caffemodel.h5", "conv1_1"]),
    "HDF5 string dataset": Case(_hdf5(_string_dataset),
                                lambda t: ["w.caffemodel.h5", "--prototxt", "net.prototxt", "-o", "out.pth"],
                                lambda t: ["w.caffemodel.h5", "conv1_1"]),
    "non-UTF-8 layer type": Case(_non_utf8_type, lambda t: ["m.caffemodel", "-o", "out.pth"],
                                 lambda t: ["m.caffemodel", "UTF-8"]),
    "two weighted layers share a name": Case(_duplicate_weighted_names, lambda t: ["m.caffemodel", "-o", "out.pth"],
                                             lambda t: ["m.caffemodel", "conv", "name"]),
    "-o is the input, with --force": Case(lambda t: {"m.caffemodel": MODEL.read_bytes()},
                                          lambda t: ["m.caffemodel", "-o", "m.caffemodel", "--force"],
                                          lambda t: ["m.caffemodel", "input"], no_output=[]),
    "output folder missing (reported before parsing)": Case(
        lambda t: {"m.caffemodel": b"garbage that would fail to parse" * 10},
        lambda t: ["m.caffemodel", "-o", "nosuch/out.pth"], lambda t: ["nosuch/out.pth", "does not exist"],
        no_output=["nosuch"]),
    "output folder not writable": Case(  # sysfs refuses new files even to root
        lambda t: {"m.caffemodel": MODEL.read_bytes()},
        lambda t: ["m.caffemodel", "-o", "/sys/out.pth"], lambda t: ["/sys/out.pth", "not writable"]),
    "/dev/zero as the model": Case(lambda t: {}, lambda t: ["/dev/zero", "-o", "out.pth"],
                                   lambda t: ["/dev/zero", "not a regular file"]),
    "a pipe as the model": Case(lambda t: {}, lambda t: ["pipe", "-o", "out.pth"],
                                lambda t: ["pipe", "not a regular file"]),
    "a 3-byte file": Case(lambda t: {"m.caffemodel": b"abc"}, lambda t: ["m.caffemodel", "-o", "out.pth"],
                          lambda t: ["m.caffemodel", "too small"]),
    "a README as the model": Case(lambda t: {"README.md": b"# A project\n\nSome words about it.\n" * 3},
                                  lambda t: ["README.md", "-o", "out.pth"],
                                  lambda t: ["README.md", "text file, not a Caffe model"]),
}


DEMO = ROOT / "fcn_ref" / "demo"
_CONVERTED: dict[str, bytes] = {}


def converted(model: Path) -> bytes:
    """The bytes of ``model`` converted (once per run)."""
    import tempfile

    import convert

    if str(model) not in _CONVERTED:
        with tempfile.TemporaryDirectory() as tmp:
            _CONVERTED[str(model)] = convert.convert(model, output=Path(tmp) / "x.pth").read_bytes()
    return _CONVERTED[str(model)]


def _resealed(model: Path, change: Callable[[dict], None]) -> bytes:
    """A converted file whose content was changed and then sealed with a fresh digest (well-formed)."""
    payload = torch.load(io.BytesIO(converted(model)), weights_only=True)
    change(payload)
    buf = io.BytesIO()
    torch.save(sealed({k: v for k, v in payload.items() if k not in ("format", "digest")}), buf)
    return buf.getvalue()


def _one_tensor_byte_changed(model: Path) -> bytes:
    import zipfile

    data = bytearray(converted(model))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = next(i for i in z.infolist() if i.filename.endswith("data/0"))
    start = info.header_offset + 30 + int.from_bytes(data[info.header_offset + 26:info.header_offset + 28], "little") \
        + int.from_bytes(data[info.header_offset + 28:info.header_offset + 30], "little")
    data[start + 1] ^= 0x10
    return bytes(data)


def _stride_zero(payload: dict) -> None:
    payload["net"] = payload["net"].replace("stride: 2", "stride: 0", 1)


def _infer(weights: Callable[[], bytes], extra: list[str], names: list[str], image: str = "demo.jpg",
           no_output: tuple[str, ...] = ("seg.png",)) -> Case:
    return Case(lambda t: {"w.pth": weights(), "demo.jpg": (DEMO / "demo.jpg").read_bytes()},
                lambda t: [image, "--weights", "w.pth", *extra], lambda t: names, cli="infer",
                no_output=list(no_output))


FCN8S_PTH = lambda: converted(DEMO / "fcn8s-tiny.caffemodel")  # noqa: E731
SIFT_PTH = lambda: converted(FIXTURES / "siftflow-fcn8s" / "net.caffemodel")  # noqa: E731
INFER_CASES = {
    "output in a missing folder": _infer(FCN8S_PTH, ["-o", "nosuch/seg.png"], ["nosuch/seg.png", "does not exist"],
                                         no_output=("nosuch",)),
    "unknown picture extension": _infer(FCN8S_PTH, ["-o", "seg.xyz"], ["seg.xyz", "extension"],
                                        no_output=("seg.xyz",)),
    "label map as JPEG": _infer(FCN8S_PTH, ["-o", "seg.jpg"], ["seg.jpg", "JPEG"], no_output=("seg.jpg",)),
    "overlay in a missing folder": _infer(FCN8S_PTH, ["-o", "seg.png", "--overlay", "nosuch/vis.jpg"],
                                          ["nosuch/vis.jpg", "does not exist"]),
    "--output-blob nosuch on FCN-8s": _infer(FCN8S_PTH, ["-o", "seg.png", "--output-blob", "nosuch"],
                                             ["w.pth", "nosuch"]),
    "--output-blob nosuch on SIFT Flow": _infer(SIFT_PTH, ["-o", "seg.png", "--output-blob", "nosuch"],
                                                ["w.pth", "nosuch", "score_sem"]),
    "a caffemodel as --weights": _infer(lambda: (DEMO / "fcn8s-tiny.caffemodel").read_bytes(), ["-o", "seg.png"],
                                        ["w.pth", "convert it first"]),
    "one byte of tensor data changed": _infer(lambda: _one_tensor_byte_changed(DEMO / "fcn8s-tiny.caffemodel"),
                                              ["-o", "seg.png"], ["w.pth", "damaged", "tensor"]),
    "damaged net description": _infer(
        lambda: converted(DEMO / "fcn8s-tiny.caffemodel").replace(b'name: "upscore2"', b'name: "upscorf2"'),
        ["-o", "seg.png"], ["w.pth", "damaged"]),
    "stride 0 (well-formed file)": _infer(lambda: _resealed(DEMO / "fcn8s-tiny.caffemodel", _stride_zero),
                                          ["-o", "seg.png"], ["w.pth", "stride 0"]),
    "num_classes 2**40 (well-formed file)": _infer(
        lambda: _resealed(DEMO / "fcn8s-tiny.caffemodel", lambda p: p.update(
            architecture={"name": "fcn8s", "kwargs": {"num_classes": 2**40}})),
        ["-o", "seg.png"], ["w.pth", "num_classes"]),
    "architecture of the wrong type (well-formed file)": _infer(
        lambda: _resealed(DEMO / "fcn8s-tiny.caffemodel", lambda p: p.update(architecture=["fcn8s"])),
        ["-o", "seg.png"], ["w.pth", "architecture"]),
    "a tensor missing (well-formed file)": _infer(
        lambda: _resealed(DEMO / "fcn8s-tiny.caffemodel", lambda p: p["state_dict"].pop("score_fr.weight")),
        ["-o", "seg.png"], ["w.pth", "score_fr"]),
    "a picture that is not one": _infer(FCN8S_PTH, ["-o", "seg.png"], ["w.pth", "cannot read the picture"],
                                        image="w.pth"),
}


def _voc_folder(tmp: Path, drop: str | None = None) -> dict[str, bytes]:
    """A two-image VOC year folder (``drop``: one file left out), and converted weights."""
    from PIL import Image

    files = {"w.pth": FCN8S_PTH(), "VOC/ImageSets/Segmentation/val.txt": b"a\nb\n"}
    for image_id in ("a", "b"):
        jpg, png = io.BytesIO(), io.BytesIO()
        Image.new("RGB", (8, 6), (90, 120, 150)).save(jpg, format="JPEG")
        Image.new("P", (8, 6), 0).save(png, format="PNG")
        files[f"VOC/JPEGImages/{image_id}.jpg"] = jpg.getvalue()
        files[f"VOC/SegmentationClass/{image_id}.png"] = png.getvalue()
    files.pop(drop, None)
    return files


def _evaluate(files: Callable[[Path], dict[str, bytes]], extra: list[str], names: list[str],
              no_output: tuple[str, ...] = ("r.json",)) -> Case:
    return Case(files, lambda t: ["--split", "val", "--device", "cpu", "--json", "r.json", *extra],
                lambda t: names, cli="evaluate", no_output=list(no_output))


EVALUATE_CASES = {
    "missing --voc-root": _evaluate(_voc_folder, ["--weights", "w.pth", "--voc-root", "nosuch"],
                                    ["nosuch", "no such folder"]),
    "a folder that is not VOC": _evaluate(_voc_folder, ["--weights", "w.pth", "--voc-root", "VOC/JPEGImages"],
                                          ["VOC/JPEGImages", "not a VOC year folder"]),
    "missing weights": _evaluate(_voc_folder, ["--weights", "nosuch.pth", "--voc-root", "VOC"],
                                 ["nosuch.pth", "no such file"]),
    "an image of the split missing": _evaluate(lambda t: _voc_folder(t, drop="VOC/JPEGImages/b.jpg"),
                                               ["--weights", "w.pth", "--voc-root", "VOC"], ["VOC", "b.jpg"]),
    "--json in a missing folder": _evaluate(_voc_folder, ["--weights", "w.pth", "--voc-root", "VOC", "--json",
                                                          "nosuch/r.json"], ["nosuch/r.json", "does not exist"]),
    "damaged weights": _evaluate(lambda t: {**_voc_folder(t), "w.pth": _one_tensor_byte_changed(
        DEMO / "fcn8s-tiny.caffemodel")}, ["--weights", "w.pth", "--voc-root", "VOC"], ["w.pth", "damaged"]),
}


def run_in_process(cli: str, argv: list[str]) -> tuple[int, str]:
    """A CLI's ``main`` with its stderr captured; any exception escaping it fails the test."""
    if cli == "convert":
        from convert.cli import main
    elif cli == "infer":
        from fcn_ref.infer import main
    elif cli == "evaluate":
        from fcn_ref.evaluate import main
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code
    return code, err.getvalue()


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file()}


def check_case(case: Case, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name, data in case.files(tmp_path).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    argv = case.argv(tmp_path)
    if "pipe" in argv:
        os.mkfifo(tmp_path / "pipe")
    before = _digests(tmp_path)
    code, err = run_in_process(case.cli, argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for name in case.names(tmp_path):
        assert name in lines[0], f"{name!r} not in {lines[0]!r}"
    for name in case.no_output:
        assert not (tmp_path / name).exists(), f"{name} was written"
    assert not [p for p in tmp_path.rglob(".*.tmp")], "temporary file left"
    assert _digests(tmp_path) == before, "a file was changed"


@pytest.mark.parametrize("name", list(CONVERT_CASES))
def test_convert_cli(name, tmp_path, monkeypatch):
    check_case(CONVERT_CASES[name], tmp_path, monkeypatch)


@pytest.mark.parametrize("name", list(EVALUATE_CASES))
def test_evaluate_cli(name, tmp_path, monkeypatch):
    check_case(EVALUATE_CASES[name], tmp_path, monkeypatch)


@pytest.mark.parametrize("name", list(INFER_CASES))
def test_infer_cli(name, tmp_path, monkeypatch):
    check_case(INFER_CASES[name], tmp_path, monkeypatch)


def test_infer_help_is_whole_sentences():
    text = subprocess.run([sys.executable, "-m", "fcn_ref.infer", "--help"], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    description = " ".join(text.split("\n\n")[1].split())
    assert description.endswith("as an overlay picture."), description


def test_infer_names_the_classes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.pth").write_bytes(FCN8S_PTH())
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        from fcn_ref.infer import main
        assert main([str(DEMO / "demo.jpg"), "--weights", "w.pth", "-o", "seg.png"]) == 0
    from voc.datasets import VOC_CLASSES

    present = out.getvalue().split("classes present: ")[1].strip().split(", ")
    assert present and all(VOC_CLASSES[int(c.split()[0])] == c.split()[1] for c in present), out.getvalue()
