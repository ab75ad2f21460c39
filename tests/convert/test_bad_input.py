"""Bad input: one line naming the file (and layer), a non-zero exit, and no output file."""
from __future__ import annotations

import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES, ROOT
from convert import CaffeFormatError, read_net
from convert.cli import main

CASE = FIXTURES / "voc-fcn8s"
PNG = (b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00\x00\x00"
       + zlib.crc32(b"IHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00\x00\x00").to_bytes(4, "big"))


def run_cli(capsys, *args: str | Path) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def assert_clean_failure(code: int, err: str, out: Path, *names: str) -> None:
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 3, err
    assert "Traceback" not in err
    for name in names:
        assert name in err, f"{name!r} not named in: {err}"
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.*")), "temporary file left behind"


@pytest.fixture
def caffemodel(tmp_path: Path) -> Path:
    target = tmp_path / "good.caffemodel"
    target.write_bytes((CASE / "net.caffemodel").read_bytes())
    return target


def test_missing_file(tmp_path, capsys):
    out = tmp_path / "x.pth"
    code, err = run_cli(capsys, tmp_path / "nope.caffemodel", "-o", out)
    assert_clean_failure(code, err, out, "nope.caffemodel", "no such file")


def test_empty_file(tmp_path, capsys):
    model = tmp_path / "empty.caffemodel"
    model.write_bytes(b"")
    out = tmp_path / "x.pth"
    code, err = run_cli(capsys, model, "-o", out)
    assert_clean_failure(code, err, out, "empty.caffemodel", "empty")


def test_random_bytes(tmp_path, capsys):
    model = tmp_path / "random.caffemodel"
    model.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    out = tmp_path / "x.pth"
    code, err = run_cli(capsys, model, "-o", out)
    assert_clean_failure(code, err, out, "random.caffemodel")


@pytest.mark.parametrize("fraction", [0.3, 0.7, 0.999])
def test_truncated_file(tmp_path, capsys, caffemodel, fraction):
    data = caffemodel.read_bytes()
    caffemodel.write_bytes(data[: int(len(data) * fraction)])
    out = tmp_path / "x.pth"
    code, err = run_cli(capsys, caffemodel, "-o", out)
    assert_clean_failure(code, err, out, "good.caffemodel", "truncated")


def test_text_given_as_binary(tmp_path, capsys):
    out = tmp_path / "x.pth"
    code, err = run_cli(capsys, CASE / "net.prototxt", "-o", out)
    assert_clean_failure(code, err, out, "net.prototxt", "--prototxt")


def test_png(tmp_path, capsys):
    model = tmp_path / "picture.caffemodel"
    model.write_bytes(PNG)
    out = tmp_path / "x.pth"
    code, err = run_cli(capsys, model, "-o", out)
    assert_clean_failure(code, err, out, "picture.caffemodel", "PNG")


def test_prototxt_syntax_error_names_line(tmp_path, capsys, caffemodel):
    lines = (CASE / "net.prototxt").read_text().splitlines()
    lines.insert(5, "  kernal_size: 3 }")
    proto = tmp_path / "broken.prototxt"
    proto.write_text("\n".join(lines))
    out = tmp_path / "x.pth"
    code, err = run_cli(capsys, caffemodel, "--prototxt", proto, "-o", out)
    assert_clean_failure(code, err, out, "broken.prototxt", "line 6")


def test_prototxt_that_does_not_match_weights(tmp_path, capsys, caffemodel):
    text = (CASE / "net.prototxt").read_text()
    net = read_net(CASE / "net.caffemodel")
    layer = next(l for l in net.layers if l.type == "Convolution" and l.name == "score_fr")
    n = layer.param.convolution_param.num_output
    start = text.index('name: "score_fr"')
    field = text.index(f"num_output: {n}", start)
    proto = tmp_path / "other.prototxt"
    proto.write_text(text[:field] + f"num_output: {n + 1}" + text[field + len(f'num_output: {n}'):])
    out = tmp_path / "x.pth"
    code, err = run_cli(capsys, caffemodel, "--prototxt", proto, "-o", out)
    assert_clean_failure(code, err, out, "score_fr", str(n + 1))


def test_unknown_layer_type(tmp_path, capsys, caffemodel):
    text = (CASE / "net.prototxt").read_text()
    start = text.index('name: "relu1_1"')
    field = text.index('type: "ReLU"', start)
    proto = tmp_path / "unknown.prototxt"
    proto.write_text(text[:field] + 'type: "FancyReLU"' + text[field + len('type: "ReLU"'):])
    out = tmp_path / "x.pth"
    code, err = run_cli(capsys, caffemodel, "--prototxt", proto, "-o", out)
    assert_clean_failure(code, err, out, "relu1_1", "FancyReLU", "supported")


def test_hdf5_without_prototxt(tmp_path, capsys):
    out = tmp_path / "x.pth"
    code, err = run_cli(capsys, CASE / "net.caffemodel.h5", "-o", out)
    assert_clean_failure(code, err, out, "net.caffemodel.h5", "prototxt")


def test_refuses_to_overwrite_without_force(tmp_path, capsys, caffemodel):
    out = tmp_path / "x.pth"
    out.write_bytes(b"keep me")
    code, err = run_cli(capsys, caffemodel, "-o", out)
    assert code != 0 and "--force" in err
    assert out.read_bytes() == b"keep me"
    assert run_cli(capsys, caffemodel, "-o", out, "--force")[0] == 0
    assert out.read_bytes() != b"keep me"


def test_library_raises_one_value_error_type(tmp_path):
    model = tmp_path / "empty.caffemodel"
    model.write_bytes(b"")
    with pytest.raises(CaffeFormatError) as info:
        read_net(model)
    assert isinstance(info.value, ValueError)


def test_subprocess_exit_status_and_no_traceback(tmp_path):
    model = tmp_path / "random.caffemodel"
    model.write_bytes(b"\x0a\xff\xff\xff\x0fgarbage")
    out = tmp_path / "x.pth"
    proc = subprocess.run([sys.executable, "-m", "convert", str(model), "-o", str(out)], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "random.caffemodel" in proc.stderr
    assert not out.exists()
