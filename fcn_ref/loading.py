"""One load path for the zoo models: a converted file or a caffemodel in, an eval-mode model out.

Files name tensors by Caffe layer (``fcn_ref.caffe_names`` maps them to module paths). The state
is loaded strictly: a key the model lacks, a key the file lacks, or a shape that differs is an
error naming every such key, never a silently half-initialised model.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from convert.checkpoint import read_checkpoint, state_dict_of
from convert.errors import CaffeFormatError
from convert.fastpath import set_exact
from convert.reader import read_net
from fcn_ref.caffe_names import load_state_strict
from fcn_ref.models import ARCHITECTURES, FCN, build
from fcn_ref.recognize import recognize




def load(path: str | os.PathLike, *, exact: bool = False) -> nn.Module:
    """A file written by ``python -m convert`` or ``fcn_ref.save`` as an eval-mode model.

    A zoo net (the architecture the file stores, else the one recognized in its net) becomes its
    fcn_ref class; anything else loads through the generic runtime (``convert.runtime.load``),
    which runs any supported Caffe net. ``exact=True`` turns every fast path off
    (``convert.fastpath.set_exact``): each layer computes exactly what ``F.conv2d`` does.
    """
    checkpoint = read_checkpoint(path)
    architecture = checkpoint.architecture
    if not architecture or architecture.get("name") not in ARCHITECTURES:
        architecture = recognize(checkpoint.net)
    if architecture is None:
        from convert.runtime import load as load_generic

        return load_generic(path, exact=exact)
    model = set_exact(build(architecture), exact)
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
    model = build(architecture)
    load_state_strict(model, state_dict_of(net), path=str(weights))
    return model.eval()
