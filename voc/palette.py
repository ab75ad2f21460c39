"""PASCAL VOC's colour map, so label PNGs we write open like the dataset's own.

VOC stores labels as palette ("P" mode) PNGs: the pixel values are the class indices and the
palette only decides how they look. The map spreads the bits of the index over the high bits of
R, G and B, so neighbouring indices get distant colours; index 255 (void) comes out cream.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_palette(num_colors: int = 256) -> np.ndarray:
    """The VOC devkit colour map as a (num_colors, 3) uint8 array of RGB colours."""
    palette = np.zeros((num_colors, 3), dtype=np.uint8)
    for index in range(num_colors):
        value, bit = index, 7
        while value:
            for channel in range(3):
                palette[index, channel] |= ((value >> channel) & 1) << bit
            value >>= 3
            bit -= 1
    return palette


VOC_PALETTE: np.ndarray = make_palette(256)


def label_image(label: np.ndarray) -> Image.Image:
    """A uint8 label map as a palette image whose pixel values are exactly the labels."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"label map must be 2-D, got shape {label.shape}")
    if label.size and (label.min() < 0 or label.max() > 255):
        raise ValueError("label values must fit in uint8")
    image = Image.fromarray(label.astype(np.uint8))  # "L"; putpalette turns it into "P"
    image.putpalette(VOC_PALETTE.ravel().tolist())
    return image


def save_label_png(label: np.ndarray, path: str | Path) -> None:
    """Write a label map as a VOC-style palette PNG (lossless, so it reads back identically)."""
    label_image(label).save(path)
