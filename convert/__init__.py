"""Read Caffe models without Caffe and run them in PyTorch with Caffe's exact numerics.

``read_net`` reads any Caffe file into one checked ``CaffeNet``; ``load_caffe`` and ``load`` give a
``torch.nn.Module`` (the latter from a file written by ``python -m convert``).
"""
from convert.errors import CaffeFormatError
from convert.net import CaffeNet, Layer
from convert.reader import read_net

__all__ = ["CaffeFormatError", "CaffeNet", "Layer", "read_net", "load_caffe", "load"]


def load_caffe(weights=None, prototxt=None):
    """A Caffe model as an eval-mode ``torch.nn.Module`` (see ``convert.runtime``)."""
    from convert.runtime import load_caffe as _load_caffe

    return _load_caffe(weights, prototxt)


def load(path):
    """A file written by ``python -m convert`` as an eval-mode ``torch.nn.Module``."""
    from convert.runtime import load as _load

    return _load(path)
