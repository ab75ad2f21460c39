"""One picture in, one label map out: the argmax over classes of the model's score blob."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn

from fcn_ref.transforms import VOC_MEAN, preprocess
from voc.inference import score_blob


def predict(model: nn.Module, image: Image.Image | np.ndarray | torch.Tensor, mean: np.ndarray = VOC_MEAN,
            output: str | None = None) -> np.ndarray:
    """(H, W) uint8 class indices for one picture (or an already preprocessed (1, C, H, W) tensor)."""
    x = image if isinstance(image, torch.Tensor) else preprocess(image, mean)
    with torch.no_grad():
        score = score_blob(model(x), output)  # a tensor, or 'score' / the only blob of a dict
    if score.shape[1] > 256:
        raise ValueError(f"{score.shape[1]} classes do not fit a uint8 label map")
    return score[0].argmax(0).to(torch.uint8).numpy()
