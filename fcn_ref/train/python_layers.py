"""The reference repo's Python data layers, mapped onto ``voc`` datasets.

A train net from fcn.berkeleyvision.org names its data as ``type: "Python"`` with
``python_param { module: "voc_layers" layer: "SBDDSegDataLayer" param_str: "{...}" }``. Here
``(module, layer)`` picks a row of ``PYTHON_DATA_LAYERS``, ``param_str`` is read as a Python
literal (``ast.literal_eval``: the reference ``eval``s it), and the source yields what the
reference layer's ``forward`` writes: whole images, batch 1, at their native size.

Order, as in the reference: a split whose name has no ``train`` is read in list order with
wrap-around; otherwise (``randomize``, default True) each image is ``random.randint(0, n - 1)``
from Python's ``random`` seeded with ``seed``, drawn after each forward. We draw from our own
``random.Random(seed)``, which gives the very sequence the reference layer draws, so a seeded
run reads the images Caffe's run read, in the same order. (The reference's generator is the global
one: two randomized layers in one process would share it there; here each has its own. The zoo's
nets have one.)

Inputs: RGB -> BGR, minus the mean (float32 image minus float64 mean, stored float32, as the
reference's in-place ``in_ -= self.mean``; for the layers with a float32 mean the float64
difference is exact before its one rounding, so it equals their float32 subtraction), channels
first. Labels: uint8 values as float32.

Per layer, as its reference file has it: VOC and SBDD take ``mean`` from param_str; SIFT Flow
writes three tops (data, semantic, geometric labels), NYUD the tops its ``tops`` list names, in
that order (color, depth = log depth minus its mean, hha, label), PASCAL-Context reads
``<voc_dir>/VOC2010`` and maps labels to the 59-class task; these three subtract their own
hard-coded means (``voc.means``) and ignore a ``mean`` key.
"""
from __future__ import annotations

import ast
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from convert.errors import CaffeFormatError
from convert.net import Layer
from fcn_ref.train.data import DATA_LAYER_SOURCES, DataSource
from voc.datasets import SBDSegmentation, VOCSegmentation
from voc.means import CONTEXT_MEAN, NYUD_COLOR_MEAN, SIFTFLOW_MEAN
from voc.other_datasets import NYUDSegmentation, PascalContextSegmentation, SIFTFlowSegmentation

Loader = Callable[[str], np.ndarray]  # image id -> one top's array (without the batch axis)


def bgr_input(image, mean: np.ndarray) -> np.ndarray:
    """The reference ``load_image``: float32 RGB -> BGR, minus ``mean`` in place, (3, H, W)."""
    pixels = np.array(image, dtype=np.float32)[:, :, ::-1]
    return (pixels - np.asarray(mean, dtype=np.float64)).astype(np.float32).transpose(2, 0, 1)


def label_top(label: np.ndarray) -> np.ndarray:
    return np.asarray(label, dtype=np.uint8)[np.newaxis]


@dataclass
class Plan:
    """What a reference layer reads: ids in split order, one loader per top, and whether to shuffle."""

    ids: list[str]
    loaders: dict[str, Loader]
    randomize: bool
    seed: int | None


def _randomize(params: dict, split: str) -> bool:
    return bool(params.get("randomize", True)) and "train" in split


def _voc(params: dict) -> Plan:
    data = VOCSegmentation(params["voc_dir"], params["split"])
    mean = np.array(params["mean"])
    return Plan(data.ids, {"data": lambda i: bgr_input(data.load_image(i), mean),
                           "label": lambda i: label_top(data.load_label(i))},
                _randomize(params, params["split"]), params.get("seed"))


def _sbdd(params: dict) -> Plan:
    data = SBDSegmentation(params["sbdd_dir"], params["split"], exclude=())  # the list as the file has it
    mean = np.array(params["mean"])
    return Plan(data.ids, {"data": lambda i: bgr_input(data.load_image(i), mean),
                           "label": lambda i: label_top(data.load_label(i))},
                _randomize(params, params["split"]), params.get("seed"))


def _siftflow(params: dict) -> Plan:
    data = SIFTFlowSegmentation(params["siftflow_dir"], params["split"])
    return Plan(data.ids, {"data": lambda i: bgr_input(data.load_image(i), SIFTFLOW_MEAN),
                           "sem": lambda i: label_top(data.load_label(i)),
                           "geo": lambda i: label_top(data.load_geometric(i))},
                _randomize(params, params["split"]), params.get("seed"))


def _nyud(params: dict) -> Plan:
    data = NYUDSegmentation(params["nyud_dir"], params["split"])
    known = {"color": lambda i: bgr_input(data.load_image(i), NYUD_COLOR_MEAN),
             "depth": data.load_log_depth, "hha": data.load_hha,
             "label": lambda i: label_top(data.load_label(i))}
    tops = list(params["tops"])
    unknown = [t for t in tops if t not in known]
    if unknown:
        raise ValueError(f"unknown NYUD top {unknown[0]!r} (known: {', '.join(known)})")
    return Plan(data.ids, {t: known[t] for t in tops}, _randomize(params, params["split"]), params.get("seed"))


def _context(params: dict) -> Plan:
    # The reference reads <voc_dir>/VOC2010 and subtracts its own mean (a "mean" key is ignored).
    data = PascalContextSegmentation(Path(params["voc_dir"]) / "VOC2010", params["context_dir"], params["split"])
    return Plan(data.ids, {"data": lambda i: bgr_input(data.load_image(i), CONTEXT_MEAN),
                           "label": lambda i: label_top(data.load_label(i))},
                _randomize(params, params["split"]), params.get("seed"))


# (module, class) of the reference repo's layers -> how to read their param_str.
PYTHON_DATA_LAYERS: dict[tuple[str, str], Callable[[dict], Plan]] = {
    ("voc_layers", "VOCSegDataLayer"): _voc,
    ("voc_layers", "SBDDSegDataLayer"): _sbdd,
    ("siftflow_layers", "SIFTFlowSegDataLayer"): _siftflow,
    ("nyud_layers", "NYUDSegDataLayer"): _nyud,
    ("pascalcontext_layers", "PASCALContextSegDataLayer"): _context,
}


class PlanSource:
    """A ``DataSource`` over a ``Plan``: the reference layer's order, state for exact resume."""

    def __init__(self, plan: Plan, tops: tuple[str, ...], layer: str | None = None) -> None:
        if len(tops) != len(plan.loaders):
            raise CaffeFormatError(f"has {len(tops)} tops; the layer writes {len(plan.loaders)} "
                                   f"({', '.join(plan.loaders)})", layer=layer)
        if not plan.ids:
            raise CaffeFormatError("its split lists no images", layer=layer)
        self.plan, self.tops, self.layer = plan, tuple(tops), layer
        self.loaders = list(plan.loaders.values())  # by position, as the reference's top[i]
        self.rng = random.Random(plan.seed)
        self.index = self.rng.randint(0, len(plan.ids) - 1) if plan.randomize else 0

    def _load(self) -> dict[str, Tensor]:
        image_id = self.plan.ids[self.index]
        try:
            arrays = [load(image_id) for load in self.loaders]
        except (OSError, ValueError, KeyError) as e:
            raise CaffeFormatError(f"cannot read image {image_id!r}: {e}".splitlines()[0], layer=self.layer) from None
        return {top: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None]
                for top, a in zip(self.tops, arrays)}

    def peek_shapes(self) -> dict[str, tuple[int, ...]]:
        return {top: tuple(t.shape) for top, t in self._load().items()}

    def _advance(self) -> None:
        if self.plan.randomize:
            self.index = self.rng.randint(0, len(self.plan.ids) - 1)
        else:
            self.index = (self.index + 1) % len(self.plan.ids)

    def next_batch(self) -> dict[str, Tensor]:
        batch = self._load()
        self._advance()
        return batch

    def skip(self, count: int) -> None:
        """Move on ``count`` images without reading them (the other ranks' images under DDP)."""
        for _ in range(count):
            self._advance()

    def state_dict(self) -> dict:
        return {"index": self.index, "rng": self.rng.getstate()}

    def load_state_dict(self, state: dict) -> None:
        self.index = int(state["index"])
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))


def read_param_str(text: str, layer: str | None = None) -> dict:
    try:
        params = ast.literal_eval(text) if text.strip() else {}
    except (ValueError, SyntaxError):
        raise CaffeFormatError(f"param_str is not a Python literal: {text[:60]!r}", layer=layer) from None
    if not isinstance(params, dict):
        raise CaffeFormatError("param_str must be a dict literal", layer=layer)
    return params


def python_source(layer: Layer, seed: int) -> DataSource:
    """The source for a reference Python data layer (``seed``: the solver's, unused: the layer has its own)."""
    p = layer.param.python_param
    make = PYTHON_DATA_LAYERS.get((p.module, p.layer))
    if make is None:
        known = ", ".join(f"{m}.{c}" for m, c in PYTHON_DATA_LAYERS)
        raise CaffeFormatError(f"Python layer {p.module}.{p.layer} has no data source (known: {known})",
                               layer=layer.name)
    params = read_param_str(p.param_str, layer.name)
    try:
        plan = make(params)
    except KeyError as e:
        raise CaffeFormatError(f"param_str lacks {e.args[0]!r}", layer=layer.name) from None
    except (OSError, ValueError) as e:
        raise CaffeFormatError(str(e).splitlines()[0], layer=layer.name) from None
    return PlanSource(plan, tuple(layer.tops), layer.name)


DATA_LAYER_SOURCES["Python"] = python_source
