"""``convert.convert``: the API the CLI runs; output checks, load-back before rename, file mode, and
no work (hashing thread, memory maps) outliving the call."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import convert
from conftest import FIXTURES, ROOT
from convert.converter import FileHasher

MODEL = FIXTURES / "layer-conv-group" / "net.caffemodel"


def test_convert_returns_the_path_written_beside_the_model(tmp_path):
    model = tmp_path / "m.caffemodel"
    model.write_bytes(MODEL.read_bytes())
    out = convert.convert(model)
    assert out == tmp_path / "m.pth"
    assert convert.load(out).meta["source"]["file"] == "m.caffemodel"
    with pytest.raises(convert.CaffeFormatError, match="exists"):
        convert.convert(model)
    assert convert.convert(model, force=True) == out


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_file_mode_follows_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        out = convert.convert(MODEL, output=tmp_path / "m.pth")
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == mode


def test_a_file_that_does_not_load_back_is_never_put_in_place(tmp_path, monkeypatch):
    import convert.runtime

    def refuse(path):
        raise convert.CaffeFormatError("simulated", path=str(path), layer="conv")

    monkeypatch.setattr(convert.runtime, "load", refuse)
    with pytest.raises(convert.CaffeFormatError, match=r"net.caffemodel: layer 'conv': the converted file does not"):
        convert.convert(MODEL, output=tmp_path / "m.pth")
    assert list(tmp_path.iterdir()) == []


def test_hasher_is_joined_on_close(tmp_path):
    hasher = FileHasher(FIXTURES / "voc-fcn8s" / "net.caffemodel")
    hasher.close()
    assert not hasher._thread.is_alive()


def test_input_may_be_rewritten_after_read_net_or_a_failed_convert(tmp_path):
    """Truncating the input after the call returns or raises must not kill the process (SIGBUS)."""
    script = textwrap.dedent(f"""
        import shutil, numpy as np, convert
        from pathlib import Path
        src, tmp = Path({str(FIXTURES / "voc-fcn8s" / "net.caffemodel")!r}), Path({str(tmp_path)!r})
        model = tmp / "m.caffemodel"
        shutil.copy(src, model)
        net = convert.read_net(model)
        model.write_bytes(b"")  # rewrite in place: any view of the old map would now fault
        total = sum(float(np.asarray(b).sum()) for layer in net.layers for b in layer.blobs)
        shutil.copy(src, model)
        try:
            convert.convert(model, output=tmp / "m.caffemodel")  # refused: output is the input
        except convert.CaffeFormatError:
            pass
        shutil.copy(src, model)
        try:
            convert.convert(model, prototxt=Path({str(FIXTURES / "layer-conv-group" / "net.prototxt")!r}),
                            output=tmp / "x.pth")  # refused after parsing: the weights do not fit
        except convert.CaffeFormatError:
            pass
        model.write_bytes(b"")
        print("ok", total)
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])})
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith("ok")
