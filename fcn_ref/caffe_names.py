"""Caffe layer names are the contract of the files: the one table from module paths to them.

A model's state-dict keys are PyTorch module paths (``head.skip_pool4.score.weight``); a
caffemodel or converted file names the same tensor ``score_pool4.weight``. The tables below are
the whole mapping, used to load a file into a model and to write a model back as a file:

- ``PART_SUFFIXES``: a model's containers, and the suffix their Caffe layers carry (SIFT Flow's
  two heads ``_sem``/``_geo``, NYUD color-HHA's two trunks ``color``/``hha``; none for the rest);
- ``HEAD_NAMES``: within a head, a layer's module path -> its Caffe name, per naming era (the
  heavy nets, and the CVPR 2015 nets with their hyphens). A path no rule matches keeps its name.
  A part's suffix goes where a name says ``{s}`` (``score_pool4_semc``), else at the end.
"""
from __future__ import annotations

import re

import torch
from torch import nn

from convert.errors import CaffeFormatError

PART_SUFFIXES: dict[str, str] = {
    "trunk": "", "head": "", "sem": "_sem", "geo": "_geo", "color": "color", "hha": "hha",
}

HEAD_NAMES: dict[str, tuple[tuple[str, str], ...]] = {  # (module path pattern, Caffe name), first match
    "heavy": (
        (r"skip_(\w+)\.scale", r"scale_\1"),
        (r"skip_(\w+)\.score", r"score_\1"),
        (r"skip_(\w+)\.crop", r"score_\1{s}c"),
        (r"skip_(\w+)\.fuse", r"fuse_\1"),
        (r"crop", "score"),
        (r"fuse", "score_fused"),  # NYUD color-HHA's late fusion
        (r"concat", "data"),  # NYUD color-D joins color and depth into 'data'
    ),
    "cvpr": (
        (r"skip_(\w+)\.score", r"score-\1"),
        (r"skip_(\w+)\.crop", r"score-\1c"),
        (r"skip_(\w+)\.fuse", "fuse"),
        (r"score_fr", "score-fr"),
        (r"upscore2", "score2"),
        (r"upscore_pool4", "score4"),
        (r"upscore\d*", "upsample"),
        (r"crop", "upscore"),
    ),
    "googlenet": (  # BVLC GoogLeNet's names: a stage or inception module, a slash, the layer
        (r"crop", "score"),
        (r"(\w+)\.(\w+)", r"\1/\2"),
    ),
}


def head_layer_name(path: str, naming: str = "heavy", suffix: str = "") -> str:
    """The Caffe name of a layer at ``path`` inside a head (or a model's top level)."""
    name = path
    for pattern, template in HEAD_NAMES[naming]:
        if re.fullmatch(pattern, path):
            name = re.sub(pattern, template, path)
            break
    return name.replace("{s}", suffix) if "{s}" in name else name + suffix


def caffe_name(path: str, naming: str = "heavy") -> str:
    """The Caffe layer name of the module at ``path`` (containers dropped, their suffix added)."""
    parts = path.split(".")
    suffix = "".join(PART_SUFFIXES[p] for p in parts if p in PART_SUFFIXES)
    inner = ".".join(p for p in parts if p not in PART_SUFFIXES)
    return head_layer_name(inner, naming, suffix)


def caffe_layer_names(model: nn.Module) -> dict[str, str]:
    """Module path -> Caffe layer name for every layer (module without children) of ``model``.

    Two layers may share a name only where the files do (the CVPR nets' Eltwise 'fuse' layers,
    which have no blobs); two tensors never do.
    """
    naming = getattr(model, "naming", "heavy")
    return {path: caffe_name(path, naming) for path, module in model.named_modules()
            if path and not any(True for _ in module.children())}


def _key_map(model: nn.Module) -> dict[str, str]:
    """State-dict key (module path) -> Caffe key ``<layer>.<blob>``, one to one."""
    names = caffe_layer_names(model)
    keys = {}
    for key in model.state_dict(keep_vars=True):
        path, blob = key.rsplit(".", 1)
        keys[key] = f"{names[path]}.{blob}"
    if len(set(keys.values())) != len(keys):
        raise ValueError(f"{type(model).__name__}: two tensors map to one Caffe name")
    return keys


def caffe_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's tensors under their Caffe keys (the same tensors: writing them writes the model)."""
    state = model.state_dict(keep_vars=True)
    return {caffe: state[key].detach() for key, caffe in _key_map(model).items()}


def module_key(model: nn.Module, caffe_key: str) -> str:
    """The state-dict key of the tensor a file calls ``caffe_key`` (KeyError if none)."""
    inverse = {caffe: key for key, caffe in _key_map(model).items()}
    return inverse[caffe_key]


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], *, path: str | None = None) -> None:
    """Copy tensors keyed by Caffe names into ``model``, strictly: every missing or unexpected key
    and every shape mismatch is named in one ``CaffeFormatError``; nothing is half loaded."""
    keys = _key_map(model)
    ours = {caffe: tensor for caffe, tensor in caffe_state_dict(model).items()}
    missing = sorted(set(ours) - set(state))
    unexpected = sorted(set(state) - set(ours))
    shapes = sorted(f"{k} {tuple(state[k].shape)} != {tuple(ours[k].shape)}"
                    for k in set(ours) & set(state) if tuple(state[k].shape) != tuple(ours[k].shape))
    if missing or unexpected or shapes:
        parts = [f"missing keys: {', '.join(missing)}" if missing else "",
                 f"unexpected keys: {', '.join(unexpected)}" if unexpected else "",
                 f"shape mismatches: {'; '.join(shapes)}" if shapes else ""]
        raise CaffeFormatError(f"weights do not fit {type(model).__name__}: " + "; ".join(p for p in parts if p),
                               path=path)
    model.load_state_dict({key: state[caffe] for key, caffe in keys.items()}, strict=True)


def caffe_layer(model: nn.Module, name: str) -> nn.Module:
    """The module a file calls layer ``name`` (``caffe_layer(fcn8s, "score_pool4")``)."""
    matches = [path for path, caffe in caffe_layer_names(model).items() if caffe == name]
    if len(matches) != 1:
        raise KeyError(f"{type(model).__name__} has {len(matches)} layers named {name!r}")
    return model.get_submodule(matches[0])
