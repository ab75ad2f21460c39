"""One picture in, one label map out: the argmax over classes of the model's score blob."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from fcn_ref.transforms import VOC_MEAN, preprocess


def score_blob(output: Any, name: str | None = None) -> torch.Tensor:
    """The class-score tensor of a model output: the tensor itself, or from a dict of named blobs
    ``name``, else ``'score'``, else its only entry (a Caffe net may expose several tops)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        if name is not None:
            return output[name]
        if "score" in output:
            return output["score"]
        if len(output) == 1:
            return next(iter(output.values()))
        raise ValueError(f"model returned blobs {sorted(output)}; say which one holds the scores")
    if isinstance(output, (tuple, list)) and len(output) == 1:
        return score_blob(output[0], name)
    raise TypeError(f"cannot take class scores from a {type(output).__name__}")


def predict(model: nn.Module, image: Image.Image | np.ndarray | torch.Tensor, mean: np.ndarray = VOC_MEAN,
            output: str | None = None) -> np.ndarray:
    """(H, W) uint8 class indices for one picture (or an already preprocessed (1, C, H, W) tensor)."""
    x = image if isinstance(image, torch.Tensor) else preprocess(image, mean)
    with torch.no_grad():
        score = score_blob(model(x), output)  # a tensor, or 'score' / the only blob of a dict
    if score.shape[1] > 256:
        raise ValueError(f"{score.shape[1]} classes do not fit a uint8 label map")
    return score[0].argmax(0).to(torch.uint8).numpy()
