"""Pictures of label maps: VOC palette PNGs (from ``voc.palette``) and overlays on the input."""
from __future__ import annotations

import numpy as np
from PIL import Image

from voc.palette import VOC_PALETTE, label_image

__all__ = ["VOC_PALETTE", "label_image", "overlay"]


def overlay(image: Image.Image | np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """The picture with every non-background pixel blended with its class colour (as the
    reference's vis.vis_seg): background stays as it is, so the segments stand out."""
    picture = np.array(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.float32)
    mask = labels > 0
    picture[mask] = (1 - alpha) * picture[mask] + alpha * VOC_PALETTE[labels[mask]]
    return Image.fromarray(picture.astype(np.uint8))
