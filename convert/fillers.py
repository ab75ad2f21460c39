"""Caffe's weight fillers (``include/caffe/filler.hpp``): a FillerParameter and a blob shape in,
the initial blob out.

The formulas, fan-in/fan-out conventions and defaults are Caffe's; the random numbers are drawn
from a ``torch.Generator`` (Caffe's own RNG stream cannot be reproduced outside Caffe, so a net
trained from filler-initialized weights matches Caffe in distribution, not bit for bit; start from
the same weights file to compare runs exactly). A layer without a filler gets Caffe's default,
``constant`` 0.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from convert.errors import CaffeFormatError

Filler = Callable[[object, tuple[int, ...], torch.Generator], torch.Tensor]
VARIANCE_NORMS = {0: "FAN_IN", 1: "FAN_OUT", 2: "AVERAGE"}


def _table() -> dict[str, Filler]:
    return {
        "constant": constant,
        "uniform": uniform,
        "gaussian": gaussian,
        "positive_unitball": positive_unitball,
        "xavier": xavier,
        "msra": msra,
        "bilinear": bilinear,
    }


def constant(param, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return torch.full(shape, float(param.value), dtype=torch.float32)


def uniform(param, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    out = torch.empty(shape, dtype=torch.float32)
    return out.uniform_(float(param.min), float(param.max), generator=generator)


def gaussian(param, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """N(mean, std); with ``sparse`` >= 0 each weight is kept with probability sparse / shape[0]
    (Caffe's expected number of non-zero inputs per output)."""
    out = torch.empty(shape, dtype=torch.float32).normal_(float(param.mean), float(param.std),
                                                          generator=generator)
    if param.sparse >= 0:
        keep = min(1.0, param.sparse / shape[0])
        mask = torch.rand(shape, generator=generator) < keep
        out = out * mask
    return out


def positive_unitball(param, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """U(0, 1), then each of the shape[0] rows scaled to sum to 1."""
    out = torch.rand(shape, generator=generator, dtype=torch.float32)
    rows = out.reshape(shape[0], -1)
    return (rows / rows.sum(1, keepdim=True)).reshape(shape)


def fan(param, shape: tuple[int, ...]) -> float:
    """Caffe's n for xavier/msra: fan_in = count / shape[0], fan_out = count / shape[1], or their
    mean, by ``variance_norm``."""
    count = math.prod(shape)
    fan_in = count / shape[0]
    fan_out = count / shape[1] if len(shape) > 1 else count
    norm = VARIANCE_NORMS[param.variance_norm]
    if norm == "FAN_IN":
        return fan_in
    if norm == "FAN_OUT":
        return fan_out
    return (fan_in + fan_out) / 2


def xavier(param, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    scale = math.sqrt(3.0 / fan(param, shape))
    return torch.empty(shape, dtype=torch.float32).uniform_(-scale, scale, generator=generator)


def msra(param, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    std = math.sqrt(2.0 / fan(param, shape))
    return torch.empty(shape, dtype=torch.float32).normal_(0.0, std, generator=generator)


def bilinear(param, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Every (in, out) kernel the bilinear upsampling kernel, as Caffe's BilinearFiller writes it:
    f = ceil(k / 2), c = (k - 1) / (2f), w(x, y) = (1 - |x/f - c|)(1 - |y/f - c|), in float32.
    (Unlike the reference repo's ``surgery.interp``, which fills the diagonal only.)"""
    if len(shape) != 4 or shape[2] != shape[3]:
        raise ValueError(f"the bilinear filler needs a 4-D blob with square kernels, got {shape}")
    k = shape[3]
    f = np.float32(math.ceil(k / 2.0))
    c = np.float32((k - 1) / (2.0 * float(f)))
    x = np.arange(k, dtype=np.float32)
    line = (np.float32(1) - np.abs(x / f - c)).astype(np.float32)
    kernel = np.outer(line, line).astype(np.float32)
    return torch.from_numpy(kernel).expand(shape).clone()


FILLERS: dict[str, Filler] = _table()


def fill(param, shape: tuple[int, ...], generator: torch.Generator, *, layer: str | None = None) -> torch.Tensor:
    """A new float32 blob of ``shape`` filled as ``param`` (a FillerParameter) says."""
    filler = FILLERS.get(param.type)
    if filler is None:
        raise CaffeFormatError(f"unknown filler '{param.type}' (known: {', '.join(sorted(FILLERS))})",
                               layer=layer)
    try:
        return filler(param, tuple(int(d) for d in shape), generator).contiguous()
    except ValueError as e:
        raise CaffeFormatError(str(e), layer=layer) from None
