"""Readable PyTorch FCNs (Long, Shelhamer, Darrell) that load the berkeleyvision caffemodels exactly.

``fcn_ref.load(path)`` opens a file written by ``python -m convert``; ``FCN8s.from_caffemodel(path)``
reads a caffemodel directly. ``preprocess`` and ``predict`` reproduce the reference ``infer.py``.
"""
from convert.errors import CaffeFormatError
from fcn_ref.blocks import bilinear_weight, upsample_filt
from fcn_ref.loading import from_caffemodel, load
from fcn_ref.models import (ARCHITECTURES, CVPRFCN8s, CVPRFCN16s, CVPRFCN32s, FCN, FCN8s, FCN8sAtOnce,
                            FCN16s, FCN32s, FCNAlexNet, NYUDColorDepthFCN32s, NYUDColorHHAFCN32s,
                            SIFTFlowFCN8s, SIFTFlowFCN16s, SIFTFlowFCN32s, build)
from fcn_ref.transforms import (CONTEXT_MEAN, NYUD_COLOR_MEAN, NYUD_HHA_MEAN, NYUD_LOG_DEPTH_MEAN,
                                SIFTFLOW_MEAN, VOC_MEAN, preprocess, preprocess_depth, preprocess_hha)
from fcn_ref.predict import predict

__all__ = [
    "ARCHITECTURES", "CONTEXT_MEAN", "CVPRFCN8s", "CVPRFCN16s", "CVPRFCN32s", "CaffeFormatError", "FCN",
    "FCN8s", "FCN8sAtOnce", "FCN16s", "FCN32s", "FCNAlexNet", "NYUDColorDepthFCN32s", "NYUDColorHHAFCN32s",
    "NYUD_COLOR_MEAN", "NYUD_HHA_MEAN", "NYUD_LOG_DEPTH_MEAN", "SIFTFLOW_MEAN", "SIFTFlowFCN8s",
    "SIFTFlowFCN16s", "SIFTFlowFCN32s", "VOC_MEAN", "bilinear_weight", "build", "from_caffemodel", "load",
    "predict", "preprocess", "preprocess_depth", "preprocess_hha", "upsample_filt",
]
from fcn_ref import surgery  # noqa: E402  (fcn_ref.surgery.fcn_from_classifier, .stage)
