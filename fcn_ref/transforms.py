"""Input preprocessing exactly as the reference code feeds Caffe (infer.py and the *_layers.py).

A picture becomes float32, RGB turns into BGR, the dataset's mean is subtracted, and the layout
becomes C x H x W. Nothing else: no resizing, no /255, no std. The means keep the precision the
reference used (float64 in infer.py, float32 in the dataset layers), because the subtraction rounds
differently and "exactly" means bit for bit.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

VOC_MEAN = np.array((104.00698793, 116.66876762, 122.67891434), dtype=np.float64)  # infer.py, BGR
SIFTFLOW_MEAN = np.array((114.578, 115.294, 108.353), dtype=np.float32)  # siftflow_layers.py, BGR
CONTEXT_MEAN = np.array((104.007, 116.669, 122.679), dtype=np.float32)  # pascalcontext_layers.py, BGR
NYUD_COLOR_MEAN = np.array((116.190, 97.203, 92.318), dtype=np.float32)  # nyud_layers.py, BGR
NYUD_HHA_MEAN = np.array((132.431, 94.076, 118.477), dtype=np.float32)  # HHA channels, not flipped
NYUD_LOG_DEPTH_MEAN = np.float32(7.844)  # subtracted from log(depth)


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
