"""DDP under torchrun: 2 gloo ranks with iter_size 1 equal 1 process with iter_size 2 (rel 1e-6 over
10 iterations), each rank reading its own images; and 5 + ``--resume`` + 5 under torchrun equals the
straight 10, bit for bit. torchrun is started as a subprocess on loopback. Caffe's SGD in the
default run; Adam (the rule with the most state: two moments and its step count) in the slow tier."""
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

from fcn_ref.train.cli import main
from train_helpers import flat_state, inside, tiny_fcn

# conv, ReLU, ceil pooling, 1x1 score, frozen bilinear deconvolution, crop, unnormalized loss, and
# a clip so large it never acts. No Dropout: masks are per-rank random draws.
TRAIN = tiny_fcn('source: "list.txt" batch_size: 1', dropout=False)
SOLVER = """
train_net: "train.prototxt"
base_lr: 0.001
lr_policy: "step"
gamma: 0.5
stepsize: 4
type: "{solver_type}"
momentum: 0.9
weight_decay: 0.0005
iter_size: {iter_size}
max_iter: 10
snapshot: 5
snapshot_prefix: "{prefix}"
random_seed: 3
"""
RTOL = 1e-6


def torchrun(folder, *args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "fcn_ref.train", *args, "--no-progress"],
                         cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]


@pytest.fixture(scope="module", params=["SGD", pytest.param("Adam", marks=pytest.mark.slow)])
def run_dir(tmp_path_factory, request):
    """One process with iter_size 2 and 2 ranks with iter_size 1, 10 iterations each (shared: each
    torchrun costs seconds)."""
    tmp_path = tmp_path_factory.mktemp("ddp")
    (tmp_path / "train.prototxt").write_text(TRAIN)
    rng = np.random.default_rng(1)
    with h5py.File(tmp_path / "data.h5", "w") as f:  # 7 images: the stream wraps around mid-run
        f["data"] = rng.normal(0, 1, (7, 3, 13, 17)).astype(np.float32)
        labels = rng.integers(0, 3, (7, 1, 13, 17)).astype(np.float32)
        labels[:, :, :2] = 255
        f["label"] = labels
    (tmp_path / "list.txt").write_text("data.h5\n")
    (tmp_path / "one.prototxt").write_text(SOLVER.format(iter_size=2, prefix="one", solver_type=request.param))
    (tmp_path / "ddp.prototxt").write_text(SOLVER.format(iter_size=1, prefix="ddp", solver_type=request.param))
    with inside(tmp_path):
        assert main(["one.prototxt", "--no-progress"]) == 0
    torchrun(tmp_path, "ddp.prototxt")
    return tmp_path


def _losses(path):
    return [e["loss"] for e in map(json.loads, path.read_text().splitlines()) if "loss" in e]


def _weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def test_two_gloo_ranks_equal_one_process_with_twice_the_iter_size(run_dir):
    one, ddp = _losses(run_dir / "one_log.jsonl"), _losses(run_dir / "ddp_log.jsonl")
    assert len(one) == len(ddp) == 10
    np.testing.assert_allclose(ddp, one, rtol=RTOL)
    # Each rank read other images: a rank that read the whole stream would see another loss.
    assert len(set(np.round(one, 3))) > 5
    for prefix_weights in ("iter_5", "iter_10"):
        a, b = _weights(run_dir / f"one_{prefix_weights}.pth"), _weights(run_dir / f"ddp_{prefix_weights}.pth")
        assert a.keys() == b.keys()
    start = {p: _weights(run_dir / f"{p}_iter_5.pth") for p in ("one", "ddp")}
    end = {p: _weights(run_dir / f"{p}_iter_10.pth") for p in ("one", "ddp")}
    for name in end["one"]:
        ref = (end["one"][name] - start["one"][name]).double()
        got = (end["ddp"][name] - start["ddp"][name]).double()
        scale = ref.abs().max().item()
        if name.startswith("upscore"):  # frozen
            assert scale == 0 and torch.equal(end["ddp"][name], end["one"][name])
            continue
        assert scale > 0, name
        assert (got - ref).abs().max().item() <= RTOL * scale, name
        assert torch.allclose(end["ddp"][name], end["one"][name], rtol=RTOL, atol=RTOL * scale)
    state = torch.load(run_dir / "ddp_iter_10.solverstate", weights_only=False)
    assert len(state["ranks"]) == 2
    assert state["ranks"][0]["data"] != state["ranks"][1]["data"]


def test_resume_under_torchrun_continues_every_rank_bit_for_bit(run_dir, tmp_path):
    """2 ranks: 5 iterations, snapshot, ``--resume`` for 5 more == the straight 10, bit for bit; each
    rank goes on reading its own images from where it stood (7 images: the ranks' shards interleave
    across the wrap-around, so a rank restarting at the wrong place reads other images)."""
    for name in ("train.prototxt", "data.h5", "list.txt", "ddp.prototxt", "ddp_iter_5.pth", "ddp_iter_5.solverstate"):
        shutil.copy(run_dir / name, tmp_path / name)
    torchrun(tmp_path, "ddp.prototxt", "--resume", "ddp_iter_5.solverstate")
    straight, resumed = _weights(run_dir / "ddp_iter_10.pth"), _weights(tmp_path / "ddp_iter_10.pth")
    assert straight.keys() == resumed.keys()
    for name in straight:
        assert torch.equal(resumed[name], straight[name]), name
    moved = [name for name in straight if not torch.equal(straight[name], _weights(run_dir / "ddp_iter_5.pth")[name])]
    assert len(moved) >= 4  # the last 5 iterations did change the weights
    losses = {d: [(e["iteration"], e["loss"]) for e in map(json.loads, (d / "ddp_log.jsonl").read_text().splitlines())
                  if "loss" in e] for d in (run_dir, tmp_path)}
    assert losses[tmp_path] == losses[run_dir][5:] and len(losses[tmp_path]) == 5
    states = [torch.load(d / "ddp_iter_10.solverstate", weights_only=True) for d in (run_dir, tmp_path)]
    assert states[1]["iteration"] == 10
    for a, b in zip(states[0]["ranks"], states[1]["ranks"], strict=True):
        assert a["data"] == b["data"] and torch.equal(a["torch_rng"], b["torch_rng"])
    assert flat_state(states[1]["history"]) == flat_state(states[0]["history"])  # every history set
