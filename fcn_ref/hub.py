"""torch.hub entries: one per released FCN caffemodel (``hubconf.py`` at the repository root).

    model = torch.hub.load(repo_dir, "fcn8s", weights="fcn8s-heavy-pascal.pth", source="local")

``weights`` is the released caffemodel or the file ``python -m convert`` made of it (.pth or
.safetensors); nothing is downloaded (the zoo's address is in ``model.meta["url"]``). Without
weights the entry builds the architecture untrained, with the paper's widths unless config fields
say otherwise. Either way ``model.meta`` says what the released weights are: dataset, class names,
input preprocessing (means and channel order, no scaling) and the published scores: the entry of
``fcn_ref.zoo``, the one registry of released weights.
"""
from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from torch import nn

from convert.errors import CaffeFormatError
from convert.export import is_converted
from fcn_ref.loading import from_caffemodel, load
from fcn_ref.models import ARCHITECTURES
from fcn_ref.zoo import ZOO, ZooWeights

# Hub entry name -> the released caffemodel it stands for (``fcn_ref.zoo.ZOO``).
ENTRIES: dict[str, str] = {
    "fcn32s": "fcn32s-heavy-pascal.caffemodel",
    "fcn16s": "fcn16s-heavy-pascal.caffemodel",
    "fcn8s": "fcn8s-heavy-pascal.caffemodel",
    "fcn8s_atonce": "fcn8s-atonce-pascal.caffemodel",
    "fcn_alexnet": "fcn-alexnet-pascal.caffemodel",
    "siftflow_fcn32s": "siftflow-fcn32s-heavy.caffemodel",
    "siftflow_fcn16s": "siftflow-fcn16s-heavy.caffemodel",
    "siftflow_fcn8s": "siftflow-fcn8s-heavy.caffemodel",
    "pascalcontext_fcn32s": "pascalcontext-fcn32s-heavy.caffemodel",
    "pascalcontext_fcn16s": "pascalcontext-fcn16s-heavy.caffemodel",
    "pascalcontext_fcn8s": "pascalcontext-fcn8s-heavy.caffemodel",
    "nyud_fcn32s_color": "nyud-fcn32s-color-heavy.caffemodel",
    "nyud_fcn32s_hha": "nyud-fcn32s-hha-heavy.caffemodel",
    "nyud_fcn32s_color_hha": "nyud-fcn32s-color-hha-heavy.caffemodel",
    "cvpr_fcn32s": "fcn-32s-pascal.caffemodel",
    "cvpr_fcn16s": "fcn-16s-pascal.caffemodel",
    "cvpr_fcn8s": "fcn-8s-pascal.caffemodel",
}

def release(entry: str) -> ZooWeights:
    return next(w for w in ZOO if w.file == ENTRIES[entry])


def metadata(entry: str) -> dict[str, Any]:
    """What the released weights of ``entry`` are, for ``model.meta``."""
    weights = release(entry)
    return {
        "hub_entry": entry,
        "release": weights.file,
        "url": weights.url,
        "dataset": weights.dataset,
        "num_classes": weights.num_classes,
        "sha256": weights.sha256,
        "classes": weights.classes,
        "preprocessing": {"channels": list(weights.channel_order), "scale": 1.0,
                          "mean": [[float(v) for v in mean] for mean in weights.means], "resize": None},
        "published": [asdict(row) for row in weights.published],
    }


def load_entry(entry: str, weights: str | os.PathLike | None = None, **config: Any) -> nn.Module:
    """The model of hub ``entry``: from ``weights`` (caffemodel or converted file), else untrained."""
    arch = release(entry).architecture
    if weights is None:
        model = ARCHITECTURES[arch](**{"num_classes": release(entry).num_classes, **config}).eval()
        model.meta = {}
    else:
        if config:
            raise TypeError("config fields go with weights=None; a weights file fixes the architecture")
        path = os.fspath(weights)
        model = load(path) if is_converted(Path(path)) else from_caffemodel(path)
        if getattr(model, "arch_name", None) != arch:
            raise CaffeFormatError(f"holds a {getattr(model, 'arch_name', None) or 'non-zoo net'}; hub entry "
                                   f"'{entry}' is a {arch}", path=path)
    model.meta = {**getattr(model, "meta", {}), **metadata(entry)}
    return model


def _entry(name: str):
    def make(weights: str | os.PathLike | None = None, **config: Any) -> nn.Module:
        return load_entry(name, weights, **config)

    weights = release(name)
    make.__name__ = make.__qualname__ = name
    make.__doc__ = (f"{weights.architecture} as released in {weights.file} ({weights.dataset}, "
                    f"{weights.num_classes} classes). weights: that caffemodel or its converted file.")
    return make


HUB_ENTRIES = {name: _entry(name) for name in ENTRIES}
