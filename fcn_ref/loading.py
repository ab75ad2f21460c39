"""One load path for the zoo models: a converted file or a caffemodel in, an eval-mode model out.

The state dict is loaded strictly: a key the model lacks, a key the file lacks, or a shape that
differs is an error naming every such key, never a silently half-initialised model.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from convert.architectures import recognize
from convert.checkpoint import read_checkpoint, state_dict_of
from convert.errors import CaffeFormatError
from convert.reader import read_net
from fcn_ref.models import ARCHITECTURES, FCN, build


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], *, path: str | None = None) -> None:
    """Copy ``state`` into ``model``; raise ``CaffeFormatError`` listing every mismatched key."""
    ours = model.state_dict()
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
    model.load_state_dict(state, strict=True)


def load(path: str | os.PathLike) -> nn.Module:
    """A file written by ``python -m convert`` as an eval-mode model.

    Zoo architectures (the file's ``architecture``) become their fcn_ref class; anything else loads
    through the generic runtime (``convert.runtime.load``), which runs any supported Caffe net.
    """
    checkpoint = read_checkpoint(path)
    architecture = checkpoint.architecture
    if not architecture or architecture.get("name") not in ARCHITECTURES:
        from convert.runtime import load as load_generic

        return load_generic(path)
    model = build(architecture)
    load_state_strict(model, checkpoint.state_dict, path=str(path))
    model.meta = {"architecture": architecture, "source": checkpoint.source}  # as convert.load's .meta
    return model.eval()


def from_caffemodel(weights: str | os.PathLike, prototxt: str | os.PathLike | None = None,
                    expected: type[FCN] | None = None) -> FCN:
    """Read a caffemodel, recognize its architecture, build the model and load it (eval mode).

    ``expected`` (set by ``FCN8s.from_caffemodel``) must be exactly the recognized class.
    """
    net = read_net(weights, prototxt)
    architecture = recognize(net)
    if architecture is None:
        raise CaffeFormatError("not a recognized FCN architecture (convert.load_caffe runs any net)",
                               path=str(weights))
    cls = ARCHITECTURES[architecture["name"]]
    if expected is not None and expected is not FCN and cls is not expected:
        raise CaffeFormatError(f"is a {architecture['name']}, not a {expected.arch_name}", path=str(weights))
    model = cls(**architecture["kwargs"])
    load_state_strict(model, state_dict_of(net), path=str(weights))
    return model.eval()
