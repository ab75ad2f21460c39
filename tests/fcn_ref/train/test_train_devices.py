"""Training on CUDA, checked without a GPU: ``--device cuda`` where CUDA is absent is one line (exit 1,
nothing written) for a solver file and for a recipe; a solver state keeps every rank's CUDA generator
(Dropout draws from it) and a resumed rank restores its own. CUDA's presence and its generator are
faked (monkeypatched)."""
from __future__ import annotations

import torch
from google.protobuf import text_format
from torch import nn

from convert.schema import SolverParameter
from fcn_ref.train import solver as solver_module
from fcn_ref.train import recipes  # noqa: F401 - registers the "recipe" command
from fcn_ref.train.cli import main
from fcn_ref.train.solver import Solver
from train_helpers import inside, tiny_fcn


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
