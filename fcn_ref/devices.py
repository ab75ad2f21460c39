"""The ``--device`` of a command, checked before any work, so a missing GPU is one line, not a traceback.

Only ``cpu`` and ``cuda[:N]`` are accepted: they are the devices the numerics are written for (float32
as Caffe's Dtype, float64 where a sum must be exact). On CUDA, TF32 is switched off for matmuls and
cuDNN convolutions: Caffe computes in full fp32, and TF32's 10-bit mantissa would change the results
that are compared with it.
"""
from __future__ import annotations

import torch

SUPPORTED = ("cpu", "cuda")


class DeviceError(ValueError):
    """A ``--device`` that cannot be used here; its message is one line."""


def pick_device(name: str | torch.device | None, *, deterministic: bool = False) -> torch.device:
    """``name`` (default cpu) as a device this machine has; CUDA with TF32 off and, if
    ``deterministic`` (training: a resumed run must repeat the straight one bit for bit), with
    cuDNN's deterministic algorithms only (some backward convolutions otherwise sum in any order)."""
    text = str(name) if name is not None else "cpu"
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise DeviceError(f"--device {text}: not a device name (use cpu, cuda or cuda:N)") from None
    if device.type not in SUPPORTED:
        raise DeviceError(f"--device {text}: only cpu and cuda are supported")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise DeviceError(f"--device {text}: CUDA is not available ({why}; torch {torch.__version__})")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(f"--device {text}: this machine has {count} CUDA device(s)")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        if deterministic:
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
    return device
