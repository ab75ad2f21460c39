"""Training on CUDA, checked without a GPU: ``--device cuda`` where CUDA is absent is one line (exit 1,
nothing written) for a solver file and for a recipe; a solver state keeps every rank's CUDA generator
(Dropout draws from it) and a resumed rank restores its own (CUDA's presence and its generator are
faked, monkeypatched); and the training loop makes no tensor on the default device (run with the
default device "meta")."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from google.protobuf import text_format
from torch import nn

from convert.schema import SolverParameter
from fcn_ref.models import FCN32s
from fcn_ref.train import solver as solver_module
from fcn_ref.train.cli import build_solver, main
from fcn_ref.train.python_layers import PlanSource, _sbdd
from fcn_ref.train.recipes import seg_tests
from fcn_ref.train.solver import Solver
from fcn_ref.train.zoo import WithLoss, param_specs
from train_helpers import inside, tiny_fcn
from voc.synthetic import make_sbd_folder, make_voc_folder


def test_train_without_cuda_is_one_line_and_writes_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (tmp_path / "train.prototxt").write_text(tiny_fcn('source: "list.txt" batch_size: 1', dropout=False))
    (tmp_path / "solver.prototxt").write_text('train_net: "train.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nmax_iter: 1\n'
                                              'snapshot_prefix: "snap"\n')
    before = sorted(p.name for p in tmp_path.iterdir())
    with inside(tmp_path):
        assert main(["solver.prototxt", "--no-progress", "--device", "cuda"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --device cuda: CUDA is not available") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_recipe_without_cuda_is_one_line_and_writes_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = main(["recipe", "voc-fcn32s", "--sbd-root", str(tmp_path / "sbd"), "--voc-root", str(tmp_path / "voc"),
                 "--out", str(tmp_path / "out"), "--device", "cuda:1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: --device cuda:1: CUDA is not available") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


class _Line(nn.Module):
    loss_weights = {"loss": 1.0}

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(3))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": (self.w * x).sum()}


class _Stream:
    tops = ("x",)

    def __init__(self) -> None:
        self.position = 0

    def next_batch(self):
        self.position += 1
        return {"x": torch.full((3,), float(self.position))}

    def peek_shapes(self):
        return {"x": (3,)}

    def state_dict(self):
        return {"position": self.position}

    def load_state_dict(self, state):
        self.position = state["position"]


def _rank1_of_2_on_fake_cuda(monkeypatch, generators: dict[str, torch.Tensor]) -> Solver:
    """A solver built on the CPU, then made to believe it is rank 1 of 2 on cuda:0."""
    param = text_format.Parse('base_lr: 0.1 lr_policy: "fixed" momentum: 0.9 max_iter: 4', SolverParameter())
    solver = Solver(_Line(), _Stream(), param)
    solver.device, solver.rank, solver.world = torch.device("cuda", 0), 1, 2
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device=None: generators["current"].clone())
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device=None: generators.update(set=state))
    return solver


def test_each_rank_keeps_and_restores_its_own_cuda_generator(monkeypatch, tmp_path):
    rank0 = {"data": {"position": 9}, "torch_rng": torch.get_rng_state(),
             "cuda_rng": torch.arange(4, dtype=torch.uint8)}
    monkeypatch.setattr(solver_module, "gather_objects", lambda mine: [rank0, mine])
    generators = {"current": torch.arange(10, 14, dtype=torch.uint8)}
    solver = _rank1_of_2_on_fake_cuda(monkeypatch, generators)
    solver.data.next_batch()
    state = solver.state_dict("w.pth")
    assert torch.equal(state["ranks"][1]["cuda_rng"], generators["current"])
    assert state["ranks"][1]["data"] == {"position": 1}
    torch.save(state, tmp_path / "s.solverstate")

    generators["current"] = torch.zeros(4, dtype=torch.uint8)  # the generator has moved on since
    resumed = _rank1_of_2_on_fake_cuda(monkeypatch, generators)
    resumed.restore(tmp_path / "s.solverstate", lambda path: dict(solver.net.named_parameters()))
    assert torch.equal(generators["set"], torch.arange(10, 14, dtype=torch.uint8))  # rank 1's, not rank 0's
    assert resumed.data.state_dict() == {"position": 1}


# ---------------------------------------------------------------- no tensor left on the default device
# On CUDA the default device (CPU) is not the net's: a tensor the loop makes without naming a device
# lands on the wrong one. Running the loop on the CPU with the default device set to "meta" makes
# the same mistake fail here: a meta tensor cannot mix with the net's CPU tensors nor be read.

def _caffe_net_solver(folder):
    rng = np.random.default_rng(0)
    with h5py.File(folder / "d.h5", "w") as f:
        f["data"] = rng.normal(0, 1, (3, 3, 13, 17)).astype(np.float32)
        labels = rng.integers(0, 3, (3, 1, 13, 17)).astype(np.float32)
        labels[:, :, :2] = 255
        f["label"] = labels
    (folder / "list.txt").write_text("d.h5\n")
    (folder / "train.prototxt").write_text(tiny_fcn('source: "list.txt" batch_size: 1', dropout=True))
    (folder / "solver.prototxt").write_text(
        'train_net: "train.prototxt"\ntest_net: "train.prototxt"\ntest_iter: 2\ntest_interval: 2\n'
        'base_lr: 0.01\nlr_policy: "step"\ngamma: 0.5\nstepsize: 2\nmomentum: 0.9\nweight_decay: 0.0005\n'
        'clip_gradients: 1.0\niter_size: 2\nmax_iter: 4\nrandom_seed: 1\n')
    with inside(folder):
        return build_solver("solver.prototxt", progress=False, loss_sampling=0.5)


def _zoo_solver(folder):
    """The recipes' way: a zoo model with its loss, the reference SBD layer, seg_tests scoring."""
    make_sbd_folder(folder / "sbd", {"train": ["a", "b", "c"]}, size=(30, 22), seed=1)
    make_voc_folder(folder / "voc", num_images=2, split="val", sizes=((30, 22),), seed=2)
    torch.manual_seed(0)
    model = FCN32s(num_classes=21, widths=[4, 4, 4, 4, 4], fc_widths=[8, 8])
    data = PlanSource(_sbdd({"sbdd_dir": str(folder / "sbd"), "split": "train", "mean": (104.0, 116.7, 122.7),
                             "seed": 1337}), ("data", "label"), "data")
    param = text_format.Parse('base_lr: 1e-6 lr_policy: "fixed" momentum: 0.99 weight_decay: 0.0005 max_iter: 4 '
                              'test_interval: 2', SolverParameter())
    return Solver(WithLoss(model), data, param, specs=param_specs(model, "model."),
                  testers=[seg_tests(model, str(folder / "voc"), "val")])


@pytest.mark.parametrize("make", [_caffe_net_solver, _zoo_solver], ids=["caffe-net", "zoo-model"])
def test_the_training_loop_names_its_device_for_every_tensor(tmp_path, make):
    """Dropout, loss sampling, iter_size, clipping, weight decay, lr steps, test scoring and the solver
    state, with the default device "meta": the same results as a plain run, bit for bit."""
    results = []
    for default in ("cpu", "meta"):
        folder = tmp_path / default
        folder.mkdir()
        solver = make(folder)
        with inside(folder), torch.device(default):
            solver.step(4)
            state = solver.state_dict("unused.pth")
        assert all(t.device.type == "cpu" for t in state["history"].values())
        results.append(({k: v.detach().clone() for k, v in solver.net.state_dict().items()}, list(solver.recent_losses)))
    (weights, losses), (weights_meta, losses_meta) = results
    assert losses_meta == losses
    assert weights.keys() == weights_meta.keys()
    for name in weights:
        assert torch.equal(weights_meta[name], weights[name]), name
