"""voc.metrics against an independent set-and-fraction computation, to 1e-12."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from voc.metrics import fast_hist, scores
from voc_expected_metrics import metrics_from_hist, metrics_from_pixels

TOL = 1e-12
SUMMARY = ("pixel_acc", "mean_acc", "mean_iu", "fw_iu")


def assert_matches(ours, expected) -> None:
    for name in SUMMARY:
        want = expected[name]
        got = getattr(ours, name)
        if want is None:
            assert math.isnan(got), name
        else:
            assert abs(got - float(want)) <= TOL, (name, got, float(want))
    for name in ("class_acc", "class_iu"):
        for k, (got, want) in enumerate(zip(getattr(ours, name), expected[name])):
            assert math.isnan(got) if want is None else abs(got - float(want)) <= TOL, (name, k)


def random_images(rng: np.random.Generator, n: int, count: int, absent: set[int]):
    """Label pairs with void pixels, and classes in ``absent`` missing from ground truth; one of
    them is still predicted somewhere (IU 0), the others are never predicted (NaN)."""
    present = [c for c in range(n) if c not in absent]
    predicted_only = min(absent) if absent else None
    pairs = []
    for _ in range(count):
        shape = tuple(int(s) for s in rng.integers(3, 9, size=2))
        gt = rng.choice(present, size=shape).astype(np.uint8)
        gt[rng.random(shape) < 0.2] = 255
        pred = rng.choice(present, size=shape).astype(np.int64)
        if predicted_only is not None:
            pred[rng.random(shape) < 0.1] = predicted_only
        agree = rng.random(shape) < 0.5
        pred[agree & (gt != 255)] = gt[agree & (gt != 255)]
        pairs.append((gt, pred))
    return pairs


@pytest.mark.parametrize("seed", range(6))
def test_dataset_metrics_match_pixel_sets(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 7
    absent = {2, 5} if seed % 2 else {4}
    pairs = random_images(rng, n, count=5, absent=absent)
    hist = sum(fast_hist(gt, pred, n) for gt, pred in pairs)
    flat_gt = [int(v) for gt, _ in pairs for v in gt.ravel()]
    flat_pred = [int(v) for _, pred in pairs for v in pred.ravel()]
    expected = metrics_from_pixels(flat_gt, flat_pred, n)
    ours = scores(hist)
    assert_matches(ours, expected)
    # the setup really has both kinds of absent class: IU 0 (predicted only) and NaN (neither)
    assert ours.class_iu[min(absent)] == 0.0
    assert all(math.isnan(ours.class_acc[c]) for c in absent)
    if len(absent) > 1:
        assert math.isnan(ours.class_iu[max(absent)])


def test_fast_hist_counts_each_pair_and_drops_void() -> None:
    rng = np.random.default_rng(1)
    n = 5
    gt = rng.integers(0, n, size=(9, 11)).astype(np.uint8)
    gt[rng.random(gt.shape) < 0.3] = 255
    pred = rng.integers(0, n, size=gt.shape)
    hist = fast_hist(gt, pred, n)
    for r in range(n):
        for c in range(n):
            expected = sum(1 for g, p in zip(gt.ravel(), pred.ravel()) if g == r and p == c)
            assert hist[r, c] == expected
    assert hist.sum() == int((gt != 255).sum())
    assert hist.dtype == np.int64


@pytest.mark.parametrize("seed", range(10))
def test_scores_match_entrywise_computation_on_random_matrices(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(2, 24))
    hist = rng.integers(0, 50, size=(n, n))
    hist[rng.random((n, n)) < 0.4] = 0
    gone = rng.choice(n, size=max(1, n // 4), replace=False)
    hist[gone, :] = 0  # absent from the ground truth ...
    hist[:, gone[: len(gone) // 2]] = 0  # ... and some never predicted either
    assert_matches(scores(hist), metrics_from_hist(hist.tolist()))


def test_reference_definitions_on_a_hand_checked_matrix() -> None:
    # class 0: 3 right, 1 called 1; class 1: 2 right; class 2: absent but predicted once (IU 0);
    # class 3: absent entirely (NaN, skipped).
    hist = np.array([[3, 1, 0, 0], [0, 2, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    s = scores(hist)
    assert s.pixel_acc == pytest.approx(5 / 7)
    assert s.mean_acc == pytest.approx((3 / 4 + 2 / 3) / 2)
    assert list(s.class_iu[:3]) == pytest.approx([3 / 4, 2 / 4, 0.0])
    assert math.isnan(s.class_iu[3])
    assert s.mean_iu == pytest.approx((3 / 4 + 2 / 4 + 0) / 3)
    assert s.fw_iu == pytest.approx(4 / 7 * 3 / 4 + 3 / 7 * 2 / 4)


def test_one_matrix_for_the_dataset_not_a_mean_over_images() -> None:
    gt_a, pred_a = np.zeros((1, 4), np.uint8), np.zeros((1, 4), int)  # all right
    gt_b, pred_b = np.array([[1, 1, 0, 0]], np.uint8), np.array([[1, 0, 0, 0]])
    summed = scores(fast_hist(gt_a, pred_a, 2) + fast_hist(gt_b, pred_b, 2))
    per_image = np.mean([scores(fast_hist(gt_a, pred_a, 2)).mean_iu,
                         scores(fast_hist(gt_b, pred_b, 2)).mean_iu])
    assert summed.mean_iu == pytest.approx((6 / 7 + 1 / 2) / 2)  # hist [[6, 0], [1, 1]]
    assert summed.mean_iu != pytest.approx(per_image)


def test_empty_matrix_is_nan_without_warnings() -> None:
    with np.errstate(all="raise"):
        s = scores(np.zeros((3, 3), dtype=np.int64))
    assert all(math.isnan(getattr(s, name)) for name in SUMMARY)
    assert json.dumps(s.as_dict())  # strict JSON: NaN became null
    assert s.as_dict()["mean_iu"] is None


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        fast_hist(np.array([0, 1]), np.array([0, 3]), 3)
    with pytest.raises(ValueError, match="pixels"):
        fast_hist(np.zeros(4), np.zeros(5), 3)
    with pytest.raises(ValueError, match="square"):
        scores(np.zeros((2, 3)))
    # a wrong prediction on a void pixel is not the caller's bug: void is dropped first
    assert fast_hist(np.array([255, 0]), np.array([7, 0]), 3).sum() == 1
