"""Input preprocessing exactly as the reference code feeds Caffe (infer.py and the *_layers.py).

A picture becomes float32, RGB turns into BGR, the dataset's mean is subtracted, and the layout
becomes C x H x W. Nothing else: no resizing, no /255, no std. The means are dataset facts
(``voc.means``), kept at the precision the reference used.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from voc.means import (CONTEXT_MEAN, NYUD_COLOR_MEAN, NYUD_HHA_MEAN, NYUD_LOG_DEPTH_MEAN,  # noqa: F401
                       SIFTFLOW_MEAN, VOC_MEAN)



def image_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """An H x W x 3 float32 array of the picture's RGB values (palette/grey/RGBA pictures as RGB)."""
    if isinstance(image, Image.Image) and image.mode != "RGB":
        image = image.convert("RGB")
    array = np.array(image, dtype=np.float32)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 RGB picture, got shape {array.shape}")
    return array


def preprocess(image: Image.Image | np.ndarray, mean: np.ndarray = VOC_MEAN) -> torch.Tensor:
    """(1, 3, H, W) network input: RGB -> BGR, minus the BGR ``mean``, channels first."""
    bgr = image_array(image)[:, :, ::-1]
    centred = (bgr - mean).astype(np.float32)  # float64 mean: computed in float64 as `in_ -= mean`
    return torch.from_numpy(np.ascontiguousarray(centred.transpose(2, 0, 1)))[None]


def preprocess_hha(hha: Image.Image | np.ndarray, mean: np.ndarray = NYUD_HHA_MEAN) -> torch.Tensor:
    """(1, 3, H, W) HHA input for NYUD: the mean is subtracted, channels are NOT reversed."""
    centred = (image_array(hha) - mean).astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(centred.transpose(2, 0, 1)))[None]


def preprocess_depth(depth: Image.Image | np.ndarray, mean: np.float32 = NYUD_LOG_DEPTH_MEAN) -> torch.Tensor:
    """(1, 1, H, W) depth input for NYUD color-D: log of the stored depth minus the mean log depth."""
    d = np.array(depth, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"expected an H x W depth map, got shape {d.shape}")
    return torch.from_numpy(np.log(d) - mean)[None, None]
