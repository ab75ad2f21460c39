"""``--device``: cpu and cuda only, a missing or absent GPU is one line (exit 1, nothing written), and
CUDA runs with TF32 off. CUDA's presence is faked (monkeypatched) so this runs on any machine."""
from __future__ import annotations

import pytest
import torch

from fcn_ref.devices import DeviceError, pick_device
from fcn_ref.evaluate import main as evaluate_main
from voc.synthetic import make_voc_folder


def no_cuda(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def one_gpu(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def test_cpu_is_the_default():
    assert pick_device(None) == pick_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name, setup, message", [
    ("cuda", no_cuda, "--device cuda: CUDA is not available"),
    ("cuda:0", no_cuda, "--device cuda:0: CUDA is not available"),
    ("cuda:2", one_gpu, "--device cuda:2: this machine has 1 CUDA device(s)"),
    ("gpu", one_gpu, "--device gpu: not a device name (use cpu, cuda or cuda:N)"),
    ("meta", one_gpu, "--device meta: only cpu and cuda are supported"),
])
def test_unusable_devices_are_one_line(monkeypatch, name, setup, message):
    setup(monkeypatch)
    with pytest.raises(DeviceError) as error:
        pick_device(name)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_cuda_switches_tf32_off_and_training_asks_for_deterministic_cudnn(monkeypatch):
    one_gpu(monkeypatch)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", True)  # restored after the test
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    assert pick_device("cuda:0") == torch.device("cuda", 0)
    assert torch.backends.cuda.matmul.allow_tf32 is False and torch.backends.cudnn.allow_tf32 is False
    assert torch.backends.cudnn.deterministic is False  # only training asks for it
    assert pick_device("cuda", deterministic=True) == torch.device("cuda")
    assert torch.backends.cudnn.deterministic is True and torch.backends.cudnn.benchmark is False


def test_evaluate_without_cuda_is_one_line(monkeypatch, tmp_path, capsys):
    no_cuda(monkeypatch)
    make_voc_folder(tmp_path / "VOC", num_images=1, split="val", seed=0)
    (tmp_path / "w.pth").write_bytes(b"never read")
    code = evaluate_main(["--weights", str(tmp_path / "w.pth"), "--voc-root", str(tmp_path / "VOC"),
                          "--split", "val", "--device", "cuda", "--json", str(tmp_path / "out.json")])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: --device cuda: CUDA is not available") and err.count("\n") == 1
    assert not (tmp_path / "out.json").exists()
