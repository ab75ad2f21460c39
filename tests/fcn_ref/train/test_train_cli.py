"""``python -m fcn_ref.train SOLVER``: a solver file run from its own folder (paths relative to the
working directory, as in Caffe), snapshots that load with convert.load and fcn_ref.load, exact
resume (20 straight == 10 + resume + 10, bit for bit), and one-line errors with exit status 1."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

import convert
import fcn_ref
from conftest import ROOT
from fcn_ref.train.cli import main
from train_helpers import inside, tiny_fcn

# A small FCN: conv, ReLU, ceil pooling, Dropout 0.5 (so the RNG matters), 1x1 score, frozen bilinear
# deconvolution, crop, unnormalized loss. Data shuffled, iter_size 2, multistep lr, momentum.
TRAIN = tiny_fcn('source: "data/list.txt" batch_size: 1 shuffle: true', dropout=True)
SOLVER = """
train_net: "nets/train.prototxt"
base_lr: 0.001
lr_policy: "multistep"
gamma: 0.5
stepvalue: 4
stepvalue: 6
momentum: 0.9
weight_decay: 0.0005
iter_size: 2
average_loss: 5
max_iter: 20
snapshot: 10
snapshot_prefix: "snap/tiny"
random_seed: 7
"""


@pytest.fixture
def run_dir(tmp_path):
    """A folder laid out as a user would: solver at the top, nets/ and data/ below it."""
    (tmp_path / "nets").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "snap").mkdir()
    (tmp_path / "nets" / "train.prototxt").write_text(TRAIN)
    (tmp_path / "solver.prototxt").write_text(SOLVER)
    rng = np.random.default_rng(0)
    names = []
    for i, (h, w) in enumerate([(13, 17), (11, 15)]):
        with h5py.File(tmp_path / "data" / f"part{i}.h5", "w") as f:
            f["data"] = rng.normal(0, 1, (3, 3, h, w)).astype(np.float32)
            labels = rng.integers(0, 3, (3, 1, h, w)).astype(np.float32)
            labels[:, :, :2] = 255
            f["label"] = labels
        names.append(f"data/part{i}.h5")
    (tmp_path / "data" / "list.txt").write_text("\n".join(names) + "\n")
    return tmp_path


def _log(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def test_resume_continues_bit_for_bit(run_dir):
    resumed_dir = run_dir.parent / "resumed"
    shutil.copytree(run_dir, resumed_dir)
    with inside(run_dir):
        assert main(["solver.prototxt", "--no-progress"]) == 0
    straight = run_dir / "snap"
    assert sorted(p.name for p in straight.glob("tiny_iter_*")) == [
        "tiny_iter_10.pth", "tiny_iter_10.solverstate", "tiny_iter_20.pth", "tiny_iter_20.solverstate"]
    for name in ("tiny_iter_10.pth", "tiny_iter_10.solverstate"):
        shutil.copy(straight / name, resumed_dir / "snap" / name)
    with inside(resumed_dir):
        assert main(["solver.prototxt", "--no-progress", "--resume", "snap/tiny_iter_10.solverstate"]) == 0
    ours, theirs = _weights(resumed_dir / "snap" / "tiny_iter_20.pth"), _weights(straight / "tiny_iter_20.pth")
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert not torch.equal(ours["conv1.weight"], _weights(straight / "tiny_iter_10.pth")["conv1.weight"])
    state = [torch.load(d / "snap" / "tiny_iter_20.solverstate", weights_only=True) for d in (resumed_dir, run_dir)]
    assert all(torch.equal(state[0]["history"][k], state[1]["history"][k]) for k in state[1]["history"])
    losses = [[e["loss"] for e in _log(d / "snap" / "tiny_log.jsonl") if "loss" in e] for d in (run_dir, resumed_dir)]
    assert len(losses[0]) == 20 and losses[1] == losses[0][10:]


def test_snapshot_loads_with_convert_and_fcn_ref(run_dir):
    (run_dir / "solver.prototxt").write_text(SOLVER.replace("max_iter: 20", "max_iter: 3").replace(
        "snapshot: 10", "snapshot: 0"))
    with inside(run_dir):
        assert main(["solver.prototxt", "--no-progress"]) == 0
    path = run_dir / "snap" / "tiny_iter_3.pth"  # the end-of-training snapshot
    assert not (run_dir / "snap" / "tiny_iter_10.pth").exists()
    x = torch.randn(1, 3, 21, 19)
    net = convert.load(path)
    assert net.input_names == ["data"] and net.output_names == ["crop"]
    model = fcn_ref.load(path)
    assert torch.equal(model(x)["crop"], net(x)["crop"])
    assert net(x)["crop"].shape == (1, 3, 21, 19)
    trained = _weights(path)["score.weight"]
    assert trained.abs().sum() > 0 and torch.equal(net.score.weight.detach(), trained)


@pytest.mark.parametrize("solver, message", [
    ('train_net: "nets/train.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\ntype: "Adamax"\n',
     "unknown solver type 'Adamax'"),
    ('train_net: "nets/missing.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\n', "does not exist"),
    ('train_net: "nets/train.prototxt"\nbase_lr: 0.1\nlr_policy: "cosine"\n', "unknown lr_policy 'cosine'"),
    ('train_net: "nets/train.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nmax_iter: 2\nbogus: 1\n', "syntax error"),
])
def test_bad_solver_is_one_line(run_dir, capsys, solver, message):
    (run_dir / "bad.prototxt").write_text(solver)
    with inside(run_dir):
        assert main(["bad.prototxt", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_command_line_entry_point(run_dir):
    (run_dir / "bad.prototxt").write_text('train_net: "nets/train.prototxt"\nlr_policy: "fixed"\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "fcn_ref.train", "bad.prototxt"], cwd=run_dir, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip() == "error: bad.prototxt: base_lr is not set"


def test_test_net_scores_with_the_trained_weights(run_dir):
    """test_net / test_iter / test_interval: Caffe's Test over a separate TEST-phase net sharing the
    train net's weights; its loss and accuracy at the last test point equal an independent numpy
    computation on the same two batches with the final snapshot's weights."""
    test_net = TRAIN.replace("shuffle: true", "shuffle: false").replace(
        'layer { name: "loss"', 'layer { name: "accuracy" type: "Accuracy" bottom: "crop" bottom: "label" '
        'top: "accuracy" accuracy_param { ignore_label: 255 } }\nlayer { name: "loss"')
    (run_dir / "nets" / "test.prototxt").write_text(test_net)
    solver = SOLVER.replace("max_iter: 20", "max_iter: 3").replace("snapshot: 10", "snapshot: 0")
    solver += 'test_net: "nets/test.prototxt"\ntest_iter: 2\ntest_interval: 3\ntest_compute_loss: true\n'
    (run_dir / "solver.prototxt").write_text(solver)
    with inside(run_dir):
        assert main(["solver.prototxt", "--no-progress"]) == 0
    tests = [e for e in _log(run_dir / "snap" / "tiny_log.jsonl") if "scores" in e]
    assert [e["iteration"] for e in tests] == [0, 3]
    net = convert.load(run_dir / "snap" / "tiny_iter_3.pth")
    losses, accuracies = [], []
    with h5py.File(run_dir / "data" / "part0.h5") as a, h5py.File(run_dir / "data" / "part1.h5") as b:
        batches = [(a["data"][2], a["label"][2]), (b["data"][0], b["label"][0])]  # test rows 2 and 3
    for data, label in batches:
        score = net(torch.tensor(data[None]))["crop"][0].detach().double().numpy()
        label = label[0].astype(int)
        p = np.exp(score - score.max(0)) / np.exp(score - score.max(0)).sum(0)
        valid = label != 255
        picked = np.take_along_axis(p, np.where(valid, label, 0)[None], 0)[0]
        losses.append(-np.log(np.maximum(picked[valid], np.finfo(np.float32).tiny)).sum())
        accuracies.append((score.argmax(0) == label)[valid].mean())
    scores = tests[-1]["scores"]
    assert scores["test0/loss"] == pytest.approx(np.mean(losses), rel=1e-5)
    assert scores["test0/accuracy"] == pytest.approx(np.mean(accuracies), abs=1e-6)


def test_ctrl_c_snapshots_then_stops(run_dir):
    """SIGINT during a run: the iteration in progress finishes, a snapshot is written, solve returns."""
    import signal

    from fcn_ref.train.cli import build_solver
    from fcn_ref.train.solver import SolverEvents

    class InterruptAtTwo(SolverEvents):
        def on_iteration(self, solver, record):
            if record.iteration == 1:
                os.kill(os.getpid(), signal.SIGINT)

    with inside(run_dir):
        solver = build_solver("solver.prototxt", progress=False)
        solver.events = InterruptAtTwo()
        solver.solve()
    assert solver.stop_requested and solver.iteration == 2
    assert sorted(p.name for p in (run_dir / "snap").glob("tiny_iter_*")) == ["tiny_iter_2.pth", "tiny_iter_2.solverstate"]
