"""Caffe's fillers: deterministic ones against hand-computed values, random ones by their bounds
and moments (the numbers come from torch's RNG, never Caffe's)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from convert.errors import CaffeFormatError
from convert.fillers import fill
from convert.schema import _CLASSES

FillerParameter = _CLASSES["FillerParameter"]


def _fill(shape, **kwargs):
    return fill(FillerParameter(**kwargs), shape, torch.Generator().manual_seed(0)).numpy()


def test_default_is_constant_zero():
    assert FillerParameter().type == "constant"
    assert not _fill((3, 2)).any()
    assert (_fill((4,), type="constant", value=1.5) == 1.5).all()


def test_bilinear_matches_caffes_formula_on_every_channel_pair():
    even = _fill((2, 3, 4, 4), type="bilinear")
    line4 = np.array([0.25, 0.75, 0.75, 0.25], dtype=np.float32)
    assert (even == np.outer(line4, line4)).all()  # every (in, out) pair, not only the diagonal
    odd = _fill((1, 1, 3, 3), type="bilinear")  # f = 2, c = 0.5
    line3 = np.array([0.5, 1.0, 0.5], dtype=np.float32)
    assert (odd[0, 0] == np.outer(line3, line3)).all()
    with pytest.raises(CaffeFormatError):
        _fill((1, 1, 3, 4), type="bilinear")


def test_uniform_and_xavier_bounds():
    u = _fill((1000,), type="uniform", min=-2, max=3)
    assert u.min() >= -2 and u.max() <= 3 and u.min() < -1.9 and u.max() > 2.9
    shape = (20, 6, 5, 5)  # fan_in 150, fan_out 500
    for norm, n in ((0, 150), (1, 500), (2, 325)):
        x = _fill(shape, type="xavier", variance_norm=norm)
        bound = math.sqrt(3.0 / n)
        assert np.abs(x).max() <= bound and np.abs(x).max() > 0.95 * bound


def test_gaussian_and_msra_moments():
    g = _fill((200, 100), type="gaussian", mean=1.0, std=0.5)
    assert abs(g.mean() - 1.0) < 0.01 and abs(g.std() - 0.5) < 0.01
    m = _fill((100, 50, 3, 3), type="msra")  # n = fan_in = 450
    assert abs(m.std() - math.sqrt(2.0 / 450)) < 0.002
    sparse = _fill((100, 400), type="gaussian", sparse=25)  # keep probability 25 / 100
    assert abs((sparse != 0).mean() - 0.25) < 0.01


def test_positive_unitball_rows_sum_to_one():
    x = _fill((5, 2, 3), type="positive_unitball")
    assert (x >= 0).all()
    np.testing.assert_allclose(x.reshape(5, -1).sum(1), 1.0, rtol=1e-6)


def test_unknown_filler_is_an_error():
    with pytest.raises(CaffeFormatError, match="unknown filler 'nope'"):
        _fill((2,), type="nope")
