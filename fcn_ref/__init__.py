"""Readable PyTorch FCNs (Long, Shelhamer, Darrell) that load the berkeleyvision caffemodels exactly.

``fcn_ref.load(path)`` opens a file written by ``python -m convert`` (or ``fcn_ref.save``);
``FCN8s.from_caffemodel(path)`` reads a caffemodel directly. ``preprocess`` and ``predict``
reproduce the reference ``infer.py``. Models are a trunk (``fcn_ref.trunks``) and a head
(``fcn_ref.heads``) built from a config (``fcn_ref.configs``).
"""
from convert.errors import CaffeFormatError
from fcn_ref.blocks import Crop, Skip, Upsample, bilinear_weight, score_conv, upsample_filt
from fcn_ref.configs import FCNConfig
from fcn_ref.loading import from_caffemodel, load
from fcn_ref.models import (ARCHITECTURES, CVPRFCN8s, CVPRFCN16s, CVPRFCN32s, FCN, FCN8s, FCN8sAtOnce,
                            FCN16s, FCN32s, FCNAlexNet, NYUDColorDepthFCN32s, NYUDColorHHAFCN32s,
                            SIFTFlowFCN8s, SIFTFlowFCN16s, SIFTFlowFCN32s, build)
from fcn_ref.transforms import (CONTEXT_MEAN, NYUD_COLOR_MEAN, NYUD_HHA_MEAN, NYUD_LOG_DEPTH_MEAN,
                                SIFTFLOW_MEAN, VOC_MEAN, preprocess, preprocess_depth, preprocess_hha)
from fcn_ref.predict import predict
from fcn_ref.saving import save

__all__ = [
    "ARCHITECTURES", "CONTEXT_MEAN", "CVPRFCN8s", "CVPRFCN16s", "CVPRFCN32s", "CaffeFormatError", "Crop", "FCN",
    "FCN8s", "FCN8sAtOnce", "FCN16s", "FCN32s", "FCNAlexNet", "FCNConfig", "NYUDColorDepthFCN32s",
    "NYUDColorHHAFCN32s", "NYUD_COLOR_MEAN", "NYUD_HHA_MEAN", "NYUD_LOG_DEPTH_MEAN", "SIFTFLOW_MEAN",
    "SIFTFlowFCN8s", "SIFTFlowFCN16s", "SIFTFlowFCN32s", "Skip", "Upsample", "VOC_MEAN", "bilinear_weight",
    "build", "from_caffemodel", "load", "predict", "preprocess", "preprocess_depth", "preprocess_hha",
    "save", "score_conv", "upsample_filt",
]
from fcn_ref import surgery  # noqa: E402  (fcn_ref.surgery.fcn_from_classifier, .stage)
