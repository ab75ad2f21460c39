"""fcn_ref.evaluate on synthetic VOC folders, with a model whose predictions are known in advance.

The model is a 1x1 convolution whose class scores are the lines ``k*x - k*k/2`` in
``x = R/STEP + OFFSET`` (R = the red input channel, mean already subtracted): their upper envelope
makes the prediction ``round(x)`` clipped to 0..20. The expected label maps are computed here in
float64 from the decoded JPEGs, and the expected metrics by voc_expected_metrics, not by voc.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from voc.datasets import VOC_MEAN_BGR, VOCSegmentation, seg11valid_ids
from fcn_ref.evaluate import _equal_size_batches, evaluate, main
from fcn_ref.predict import caffe_input, predict_batch
from voc.synthetic import make_voc_folder
from voc_expected_metrics import metrics_from_pixels

K = 21
STEP = 12.0
OFFSET = 10.2  # class boundaries fall 0.28 grey levels from any integer R: no float32 near-ties
SUMMARY = ("pixel_acc", "mean_acc", "mean_iu", "fw_iu")


def line_weights(classes: int = K) -> tuple[torch.Tensor, torch.Tensor]:
    k = torch.arange(classes, dtype=torch.float64)
    weight = torch.zeros(classes, 3, 1, 1, dtype=torch.float64)
    weight[:, 2, 0, 0] = k / STEP  # BGR input: channel 2 is red
    bias = k * OFFSET - k * k / 2
    return weight.float(), bias.float()


def line_model(classes: int = K) -> torch.nn.Conv2d:
    conv = torch.nn.Conv2d(3, classes, 1)
    with torch.no_grad():
        conv.weight.copy_(line_weights(classes)[0])
        conv.bias.copy_(line_weights(classes)[1])
    return conv.eval()


def expected_prediction(jpeg: Path, classes: int = K) -> np.ndarray:
    red = np.asarray(Image.open(jpeg).convert("RGB"), dtype=np.float64)[:, :, 0]
    x = (red - VOC_MEAN_BGR[2]) / STEP + OFFSET
    k = np.arange(classes, dtype=np.float64)
    return np.argmax(k * x[..., None] - k * k / 2, axis=-1)


def expected_metrics(root: Path, ids: list[str], classes: int = K) -> dict:
    gt, pred = [], []
    for image_id in ids:
        gt += np.array(Image.open(root / "SegmentationClass" / f"{image_id}.png")).ravel().tolist()
        pred += expected_prediction(root / "JPEGImages" / f"{image_id}.jpg", classes).ravel().tolist()
    return metrics_from_pixels(gt, pred, classes)


def assert_metrics(values: dict | object, expected: dict) -> None:
    for name in SUMMARY:
        got = values[name] if isinstance(values, dict) else getattr(values, name)
        assert abs(got - float(expected[name])) <= 1e-12, name


@pytest.fixture
def voc_folder(tmp_path: Path) -> tuple[Path, list[str]]:
    root = tmp_path / "VOC"
    return root, make_voc_folder(root, num_images=7, split="val", seed=3)


def test_caffe_input_matches_reference_preprocessing_bit_for_bit(voc_folder) -> None:
    root, ids = voc_folder
    image = Image.open(root / "JPEGImages" / f"{ids[0]}.jpg")
    reference = np.array(image, dtype=np.float32)[:, :, ::-1]  # infer.py, step by step
    reference -= np.array(VOC_MEAN_BGR)
    reference = reference.transpose((2, 0, 1))
    ours = caffe_input(image).numpy()
    assert ours.dtype == np.float32 and np.array_equal(ours, reference)


def test_evaluate_scores_known_predictions(voc_folder) -> None:
    root, ids = voc_folder
    expected = expected_metrics(root, ids)
    result = evaluate(line_model(), VOCSegmentation(root, "val"), K)
    assert result.num_images == len(ids)
    assert_metrics(result.scores, expected)
    assert result.hist.sum() == sum(int((np.array(Image.open(root / "SegmentationClass" / f"{i}.png")) != 255).sum())
                                    for i in ids)
    assert 0.05 < result.scores.pixel_acc < 1.0  # neither trivial nor perfect


def test_batches_are_runs_of_equal_size_and_do_not_change_scores(voc_folder) -> None:
    root, _ = voc_folder
    dataset = VOCSegmentation(root, "val")
    batches = list(_equal_size_batches(dataset, 2))
    assert [len(b) for b in batches] == [2, 1, 2, 1, 1]  # sizes cycle a, a, b, a, a, b, a
    assert all(len({s.image.size for s in b}) == 1 for b in batches)
    one = evaluate(line_model(), dataset, K, batch_size=1)
    many = evaluate(line_model(), dataset, K, batch_size=4)
    assert np.array_equal(one.hist, many.hist)


class DictModel(torch.nn.Module):
    """Returns Caffe-like named blobs, as a converted net exposing several tops would."""

    def __init__(self, names: tuple[str, ...]) -> None:
        super().__init__()
        self.conv = line_model()
        self.names = names

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        score = self.conv(x)
        return {name: (score if name in ("score", "score_sem", "only") else -score) for name in self.names}


@pytest.mark.parametrize("names, output", [(("score", "upscore"), None), (("only",), None),
                                           (("score_geo", "score_sem"), "score_sem")])
def test_dict_outputs_pick_the_score_blob(voc_folder, names, output) -> None:
    root, ids = voc_folder
    result = evaluate(DictModel(names), VOCSegmentation(root, "val"), K, output=output)
    assert_metrics(result.scores, expected_metrics(root, ids))


def test_bad_model_outputs_are_refused(voc_folder) -> None:
    root, _ = voc_folder
    dataset = VOCSegmentation(root, "val")
    with pytest.raises(ValueError, match="say which"):
        evaluate(DictModel(("a", "b")), dataset, K)
    with pytest.raises(ValueError, match="classes"):
        evaluate(torch.nn.Conv2d(3, 5, 1), dataset, K)
    with pytest.raises(ValueError, match="input's size"):
        evaluate(torch.nn.Conv2d(3, K, 3), dataset, K)
    x = torch.zeros(1, 3, 4, 4)
    assert predict_batch(lambda t: (torch.zeros(1, K, 4, 4),), x).shape == (1, 4, 4)


def test_saved_predictions_are_palette_pngs_of_the_labels(voc_folder, tmp_path: Path) -> None:
    root, ids = voc_folder
    evaluate(line_model(), VOCSegmentation(root, "val"), K, save_dir=tmp_path / "pred")
    for image_id in ids:
        png = Image.open(tmp_path / "pred" / f"{image_id}.png")
        assert png.mode == "P"
        assert np.array_equal(np.array(png), expected_prediction(root / "JPEGImages" / f"{image_id}.jpg"))


def test_cli_report_json_pictures_and_published_rows(tmp_path: Path, capsys) -> None:
    """A run over folder whose ids are exactly seg11valid (tiny images) is recognised as seg11valid
    and printed beside the published rows of the requested caffemodel."""
    root = tmp_path / "VOC"
    ids = make_voc_folder(root, split="val", sizes=((6, 5),), ids=seg11valid_ids(), seed=5)
    out = tmp_path / "out.json"
    code = main(["--weights", "unused.pth", "--voc-root", str(root), "--split", "val", "--json", str(out),
                 "--confusion", str(tmp_path / "cm.png"), "--published", "fcn8s-heavy-pascal.caffemodel",
                 "--device", "cpu", "--batch-size", "8"],
                load_model=lambda path: line_model())
    assert code == 0
    report = json.loads(out.read_text())
    expected = expected_metrics(root, ids)
    assert_metrics(report, expected)
    assert report["image_set"] == "seg11valid" and report["num_images"] == 736
    assert [p["mean_iu"] for p in report["published"]] == [65.5, 65.51]
    assert np.array(report["confusion"]).sum() == sum(
        int((np.array(Image.open(root / "SegmentationClass" / f"{i}.png")) != 255).sum()) for i in ids)
    printed = capsys.readouterr()
    diff = 100 * float(expected["mean_iu"]) - 65.51
    assert f"{diff:+.2f}" in printed.out
    assert "aeroplane" in printed.out and "wkentaro/pytorch-fcn" in printed.out
    assert "736/736" in printed.err  # the progress line
    assert Image.open(tmp_path / "cm.png").size == (16 * K, 16 * K)


def test_cli_scores_a_model_of_other_classes_with_num_classes(tmp_path: Path, capsys) -> None:
    """A 5-class model on a 5-class set: --num-classes scores it; without it, one line and exit 1."""
    root = tmp_path / "VOC"
    ids = make_voc_folder(root, num_images=5, split="val", num_classes=5, seed=8)
    out = tmp_path / "out.json"
    args = ["--weights", "five.pth", "--voc-root", str(root), "--split", "val", "--device", "cpu"]
    assert main(args + ["--json", str(out)], load_model=lambda path: line_model(5)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "five.pth" in err and "model scores 5 classes, the dataset has 21" in err
    assert "--num-classes" in err and not out.exists()
    assert main(args + ["--json", str(out), "--num-classes", "5"], load_model=lambda path: line_model(5)) == 0
    report = json.loads(out.read_text())
    assert_metrics(report, expected_metrics(root, ids, classes=5))
    assert report["class_names"] == ["0", "1", "2", "3", "4"] and np.array(report["confusion"]).shape == (5, 5)
    assert main(args + ["--num-classes", "0"], load_model=lambda path: line_model(5)) == 1


def write_line_model_pth(path: Path, source_file: str) -> None:
    """The line model in the converted-file format (DESIGN.md), as a one-layer generic Caffe net."""
    from convert.checkpoint import sealed

    weight, bias = line_weights()
    net = ('name: "line"\ninput: "data"\ninput_shape { dim: 1 dim: 3 dim: 8 dim: 8 }\n'
           'layer { name: "score" type: "Convolution" bottom: "data" top: "score" '
           f'convolution_param {{ num_output: {K} kernel_size: 1 }} }}\n')
    torch.save(sealed({"net": net, "name": "line", "architecture": None,
                       "source": {"file": source_file, "sha256": ""},
                       "state_dict": {"score.weight": weight, "score.bias": bias}}), path)


def test_python_m_voc_evaluate_end_to_end(voc_folder, tmp_path: Path) -> None:
    root, ids = voc_folder
    weights = tmp_path / "line.pth"
    write_line_model_pth(weights, "fcn8s-heavy-pascal.caffemodel")
    out = tmp_path / "r.json"
    run = subprocess.run([sys.executable, "-m", "fcn_ref.evaluate", "--weights", str(weights), "--voc-root", str(root),
                          "--split", "val", "--json", str(out), "--save-dir", str(tmp_path / "pred"),
                          "--device", "cpu"], capture_output=True, text=True, cwd=Path(__file__).parents[2],
                         timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    assert_metrics(report, expected_metrics(root, ids))
    assert report["published"] == []  # the heavy FCN-8s was published on seg11valid, not on "val"
    assert "no published numbers for fcn8s-heavy-pascal.caffemodel on val" in run.stdout
    assert "mean IU" in run.stdout and "tvmonitor" in run.stdout
    assert sorted(p.stem for p in (tmp_path / "pred").iterdir()) == sorted(ids)


def test_cli_exact_turns_the_fast_paths_off(tmp_path: Path) -> None:
    root = tmp_path / "VOC"
    make_voc_folder(root, split="val", sizes=((6, 5),), ids=["a", "b"], seed=2)
    model = line_model()
    model.fast_paths = True  # what convert.fastpath.set_exact switches on every module that has it
    args = ["--weights", "unused.pth", "--voc-root", str(root), "--split", "val", "--published", "none",
            "--device", "cpu"]
    assert main(args, load_model=lambda path: model) == 0 and model.fast_paths
    assert main([*args, "--exact"], load_model=lambda path: model) == 0 and not model.fast_paths


def _line_model_file(tmp_path: Path) -> Path:
    """The line model as a converted file (a generic one-layer Caffe net), for a subprocess to load."""
    from convert.checkpoint import save_checkpoint
    from convert.reader import read_text
    from convert.upgrade import build_net, modern_layers

    proto = tmp_path / "line.prototxt"
    proto.write_text('name: "line"\ninput: "data"\ninput_shape { dim: 1 dim: 3 dim: 8 dim: 8 }\n'
                     'layer { name: "score" type: "Convolution" bottom: "data" top: "score"\n'
                     f'        convolution_param {{ num_output: {K} kernel_size: 1 }} }}\n')
    parsed = read_text(proto)
    weight, bias = line_weights()
    layers = [(param, [weight.numpy(), bias.numpy()]) for param, _ in modern_layers(parsed, str(proto))]
    net = build_net("line", parsed.net, layers, str(proto))
    out = tmp_path / "line.pth"
    save_checkpoint(net, out, architecture=None, source={"file": "line", "sha256": ""})
    return out


def test_sharded_under_torchrun_sums_to_the_single_process_matrix(voc_folder, tmp_path):
    """2 gloo ranks each score every other image; the summed confusion matrix is the one-process one."""
    import os

    root, ids = voc_folder
    weights = _line_model_file(tmp_path)
    assert main(["--weights", str(weights), "--voc-root", str(root), "--split", "val", "--device", "cpu",
                 "--published", "none", "--json", str(tmp_path / "one.json")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "fcn_ref.evaluate", "--weights", str(weights), "--voc-root", str(root),
                          "--split", "val", "--device", "cpu", "--published", "none",
                          "--json", str(tmp_path / "two.json")], env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert two["num_images"] == one["num_images"] == len(ids)
    assert two["confusion"] == one["confusion"]
    assert_metrics(two, expected_metrics(root, ids))  # and both are right
