"""One load path for the zoo models: a converted file or a caffemodel in, an eval-mode model out.

Files name tensors by Caffe layer (``fcn_ref.caffe_names`` maps them to module paths). The state
is loaded strictly: a key the model lacks, a key the file lacks, or a shape that differs is an
error naming every such key, never a silently half-initialised model.
"""
from __future__ import annotations

import dataclasses
import os
import warnings

import torch
from torch import nn

from convert.checkpoint import read_checkpoint, state_dict_of
from convert.errors import CaffeFormatError
from convert.fastpath import set_exact
from convert.reader import read_net
from fcn_ref.caffe_names import load_state_strict
from fcn_ref.models import ARCHITECTURES, FCN, build
from fcn_ref.recognize import recognize

INT_MAX = 2**31 - 1


def _check_setting(name: str, value: object, default: object, limit: int, path: str) -> None:
    """One stored config value against the type of its default; sizes bounded by the file's tensors."""
    def bad(why: str) -> CaffeFormatError:
        return CaffeFormatError(f"stored architecture setting {name}={str(value)[:40]} {why}", path=path)

    def size(v: object) -> None:
        if isinstance(v, bool) or not isinstance(v, int):
            raise bad("is not an integer")
        if not 1 <= v <= min(limit, INT_MAX):
            raise bad(f"is out of range (1 .. {limit}, the largest tensor dimension in the file)")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("is not true/false")
    elif isinstance(default, int):
        size(value)
    elif isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or len(value) != len(default):
            raise bad(f"is not a list of {len(default)} sizes")
        for v, d in zip(value, default):
            if isinstance(d, tuple):  # nested widths (GoogLeNetConfig.inception_widths)
                _check_setting(name, v, d, limit, path)
            else:
                size(v)
    elif default is None:  # optional tuple of layer names (CVPRConfig.deconv_bias)
        if value is not None and not (isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)):
            raise bad("is not a list of layer names")


def checked_architecture(architecture: object, state: dict[str, torch.Tensor], path: str) -> dict | None:
    """The architecture a file stores, validated before anything is built; None when the file stores
    none (or one this version does not know), in which case the net is recognized instead.

    Each setting must have its config field's type, and every size must be at most the largest
    tensor dimension in the file, so a damaged record cannot ask for terabytes. The model is then
    built on the meta device (no memory) and the file's tensors are checked against it, key by key.
    """
    if architecture is None:
        return None
    if (not isinstance(architecture, dict) or not set(architecture) <= {"name", "kwargs"}
            or not isinstance(architecture.get("name"), str) or not isinstance(architecture.get("kwargs", {}), dict)):
        raise CaffeFormatError("stored architecture is malformed (want {'name': str, 'kwargs': dict})", path=path)
    if architecture["name"] not in ARCHITECTURES:
        return None
    config = ARCHITECTURES[architecture["name"]].config_class
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    limit = max((max(t.shape) for t in state.values() if t.dim()), default=0)
    for name, value in architecture.get("kwargs", {}).items():
        if name not in defaults:
            raise CaffeFormatError(f"stored architecture {architecture['name']} has no setting '{name}'", path=path)
        _check_setting(name, value, defaults[name], limit, path)
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # loading into meta tensors is a no-op by design here
            load_state_strict(build(architecture), state, path=path)
    except (TypeError, ValueError, KeyError) as e:
        if isinstance(e, CaffeFormatError):
            raise
        raise CaffeFormatError(f"stored architecture cannot be built: {e}".splitlines()[0], path=path) from None
    return architecture


def load(path: str | os.PathLike, *, exact: bool = False) -> nn.Module:
    """A file written by ``python -m convert`` or ``fcn_ref.save`` as an eval-mode model.

    A zoo net (the architecture the file stores, else the one recognized in its net) becomes its
    fcn_ref class; anything else loads through the generic runtime (``convert.runtime.load``),
    which runs any supported Caffe net. ``exact=True`` turns every fast path off
    (``convert.fastpath.set_exact``): each layer computes exactly what ``F.conv2d`` does.
    """
    checkpoint = read_checkpoint(path)
    architecture = checked_architecture(checkpoint.architecture, checkpoint.state_dict, str(path))
    if architecture is None:
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
