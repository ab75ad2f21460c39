"""The mean pixel of each zoo dataset, as the reference code subtracts it (data, no model code).

BGR order for colour pictures (Caffe's), HHA channels in their own order. The precision is the
reference's: float64 for VOC (infer.py's ``np.array`` of Python floats), float32 in the dataset
layers, because the subtraction rounds differently and "exactly" means bit for bit.
"""
from __future__ import annotations

import numpy as np

VOC_MEAN = np.array((104.00698793, 116.66876762, 122.67891434), dtype=np.float64)  # infer.py, BGR
SIFTFLOW_MEAN = np.array((114.578, 115.294, 108.353), dtype=np.float32)  # siftflow_layers.py, BGR
CONTEXT_MEAN = np.array((104.007, 116.669, 122.679), dtype=np.float32)  # pascalcontext_layers.py, BGR
NYUD_COLOR_MEAN = np.array((116.190, 97.203, 92.318), dtype=np.float32)  # nyud_layers.py, BGR
NYUD_HHA_MEAN = np.array((132.431, 94.076, 118.477), dtype=np.float32)  # HHA channels, not flipped
NYUD_LOG_DEPTH_MEAN = np.float32(7.844)  # subtracted from log(depth)
