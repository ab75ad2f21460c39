"""Preprocessing against a by-hand numpy computation of the reference infer.py / *_layers.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import fcn_ref
from fcn_ref.predict import predict

PIXELS = np.array([[[0, 128, 255], [10, 20, 30], [255, 255, 255]],
                   [[1, 2, 3], [200, 100, 50], [7, 77, 177]]], dtype=np.uint8)  # 2 x 3 RGB


def test_voc_preprocess_equals_infer_py_by_hand():
    x = fcn_ref.preprocess(Image.fromarray(PIXELS))
    # infer.py: float32, reverse channels, `in_ -= mean` with a float64 mean, transpose to C x H x W
    in_ = np.array(PIXELS, dtype=np.float32)[:, :, ::-1].copy()
    in_ -= np.array((104.00698793, 116.66876762, 122.67891434))
    expected = in_.transpose((2, 0, 1))
    assert x.dtype == torch.float32 and x.shape == (1, 3, 2, 3)
    assert np.array_equal(x[0].numpy(), expected)
    # spot value: pixel (0,0) is R=0 G=128 B=255 -> channel 0 (B) = 255 - 104.00698793
    assert x[0, 0, 0, 0].item() == np.float32(255 - 104.00698793)


@pytest.mark.parametrize("mean", [fcn_ref.SIFTFLOW_MEAN, fcn_ref.CONTEXT_MEAN, fcn_ref.NYUD_COLOR_MEAN])
def test_dataset_means_are_float32_like_the_data_layers(mean):
    assert mean.dtype == np.float32
    x = fcn_ref.preprocess(PIXELS, mean=mean)
    in_ = np.array(PIXELS, dtype=np.float32)[:, :, ::-1].copy()
    in_ -= mean
    assert np.array_equal(x[0].numpy(), in_.transpose((2, 0, 1)))


def test_nyud_hha_is_not_flipped_and_depth_is_log_minus_mean():
    hha = fcn_ref.preprocess_hha(PIXELS)
    assert np.array_equal(hha[0].numpy(), (PIXELS.astype(np.float32) - fcn_ref.NYUD_HHA_MEAN).transpose(2, 0, 1))
    depth = np.array([[1000, 2500], [800, 65535]], dtype=np.uint16)
    d = fcn_ref.preprocess_depth(Image.fromarray(depth))
    assert d.shape == (1, 1, 2, 2)
    assert np.array_equal(d[0, 0].numpy(), np.log(depth.astype(np.float32)) - np.float32(7.844))


def test_no_resize_no_scale_and_grey_pictures_become_rgb():
    grey = Image.fromarray(np.full((5, 7), 100, dtype=np.uint8), mode="L")
    x = fcn_ref.preprocess(grey)
    assert x.shape == (1, 3, 5, 7)
    assert np.allclose(x[0, :, 0, 0].numpy(), 100 - fcn_ref.VOC_MEAN, atol=1e-5)


def test_predict_takes_score_from_a_tensor_or_a_dict():
    score = torch.zeros(1, 3, 2, 3)
    score[0, 2, 1, 1] = 1
    score[0, 1, 0, 2] = 1
    expected = np.array([[0, 0, 1], [0, 2, 0]], dtype=np.uint8)
    for model in (lambda x: score, lambda x: {"score": score, "other": -score}, lambda x: {"prob": score}):
        labels = predict(model, PIXELS)
        assert labels.dtype == np.uint8 and np.array_equal(labels, expected)
    with pytest.raises(ValueError):  # SIFT Flow: two score blobs, the caller must choose
        predict(lambda x: {"score_sem": score, "score_geo": score}, PIXELS)
    assert np.array_equal(predict(lambda x: {"score_sem": score, "score_geo": -score}, PIXELS, output="score_sem"),
                          expected)
