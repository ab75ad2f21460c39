"""The infer CLI end to end on the bundled demo: convert, segment, write a palette PNG."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import fcn_ref
from convert.checkpoint import save_checkpoint
from fcn_ref.recognize import recognize
from convert.reader import read_net
from fcn_ref.infer import main
from fcn_ref.palette import VOC_PALETTE
from conftest import FIXTURES

DEMO = Path(fcn_ref.__file__).parent / "demo"
ROOT = Path(__file__).resolve().parents[2]



def _converted_demo(tmp_path: Path) -> Path:
    net = read_net(DEMO / "fcn8s-tiny.caffemodel")
    out = tmp_path / "fcn8s-tiny.pth"
    save_checkpoint(net, out, architecture=recognize(net), source={"file": "fcn8s-tiny.caffemodel"})
    return out


def test_the_palette_written_is_the_voc_devkit_one():
    colors = VOC_PALETTE
    assert colors[:4].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    assert colors[15].tolist() == [192, 128, 128]  # person
    assert colors[255].tolist() == [224, 224, 192]  # void


def test_infer_writes_a_palette_png_of_the_prediction(tmp_path):
    weights = _converted_demo(tmp_path)
    out, vis = tmp_path / "seg.png", tmp_path / "vis.jpg"
    assert main([str(DEMO / "demo.jpg"), "--weights", str(weights), "-o", str(out), "--overlay", str(vis)]) == 0
    written = Image.open(out)
    picture = Image.open(DEMO / "demo.jpg")
    assert written.format == "PNG" and written.mode == "P" and written.size == picture.size
    assert written.getpalette()[:6] == [0, 0, 0, 128, 0, 0]
    expected = fcn_ref.predict(fcn_ref.load(weights), picture)
    assert np.array_equal(np.array(written), expected)
    assert Image.open(vis).size == picture.size


def test_readme_demo_commands_run(tmp_path):
    """The README's first command: the converter CLI, then this CLI."""
    pth, seg = tmp_path / "fcn8s-tiny.pth", tmp_path / "demo-seg.png"
    subprocess.run([sys.executable, "-m", "convert", str(DEMO / "fcn8s-tiny.caffemodel"), "-o", str(pth), "--force"],
                   check=True, cwd=ROOT, capture_output=True)
    result = subprocess.run([sys.executable, "-m", "fcn_ref.infer", str(DEMO / "demo.jpg"), "--weights", str(pth),
                             "-o", str(seg)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert Image.open(seg).mode == "P"


def test_infer_reports_a_bad_weights_file(tmp_path, capsys):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    assert main([str(DEMO / "demo.jpg"), "--weights", str(bad), "-o", str(tmp_path / "x.png")]) == 1
    assert "error" in capsys.readouterr().err


def test_infer_uses_the_mean_of_the_source_weights(tmp_path):
    """A file converted from siftflow-fcn8s-heavy.caffemodel is segmented with SIFT Flow's mean."""
    from fcn_ref.infer import _default_mean
    from fcn_ref.zoo import ZOO, weights_named

    net = read_net(FIXTURES / "siftflow-fcn8s" / "net.caffemodel")
    out = tmp_path / "sift.pth"
    save_checkpoint(net, out, architecture=recognize(net), source={"file": "siftflow-fcn8s-heavy.caffemodel"})
    model = fcn_ref.load(out)
    assert np.array_equal(_default_mean(model), fcn_ref.SIFTFLOW_MEAN)
    assert np.array_equal(_default_mean(fcn_ref.load(_converted_demo(tmp_path))), fcn_ref.VOC_MEAN)
    assert weights_named("/x/pascalcontext-fcn8s-heavy.caffemodel").num_classes == 60
    assert all(w.architecture in fcn_ref.ARCHITECTURES for w in ZOO)


def test_exact_loads_without_fast_paths_and_predicts_the_same(tmp_path, monkeypatch):
    import fcn_ref.infer as infer

    weights = _converted_demo(tmp_path)
    exact, default = fcn_ref.load(weights, exact=True), fcn_ref.load(weights)
    assert [m.fast_paths for m in exact.modules() if hasattr(m, "fast_paths")] == [False] * 3  # upscores
    assert all(m.fast_paths for m in default.modules() if hasattr(m, "fast_paths"))
    seen = []
    monkeypatch.setattr(infer, "load", lambda path, **kw: seen.append(kw) or fcn_ref.load(path, **kw))
    for flags, name in (([], "default.png"), (["--exact"], "exact.png")):
        assert main([str(DEMO / "demo.jpg"), "--weights", str(weights), "-o", str(tmp_path / name), *flags]) == 0
    assert seen == [{"exact": False}, {"exact": True}]
    assert np.array_equal(np.array(Image.open(tmp_path / "default.png")), np.array(Image.open(tmp_path / "exact.png")))

