"""Caffe's solver loop (``Solver::Step`` / ``Solver::Solve``) over any ``nn.Module``.

The module is called with a batch's blobs by name and returns a dict of blobs; the objective is
the sum of ``weight * blob.sum()`` over ``loss_weights`` (Caffe's loss tops). One iteration, as in
Caffe: clear the gradients; score the test hooks when ``test_interval`` says so; run
``iter_size`` forward/backward passes; report the mean of their losses (smoothed over
``average_loss`` iterations for display); update at the rate for this iteration with the rule of
the solver's type (``update_rules``: SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam);
count the iteration; snapshot every ``snapshot`` iterations. ``solve`` runs to ``max_iter``, then
snapshots (unless ``snapshot_after_train: false`` or one was just written) and scores once more.

Snapshots are ``<prefix>_iter_<N>.pth`` (written by ``save_weights``) and
``<prefix>_iter_<N>.solverstate`` beside it: iteration, solver type, the update rule's histories,
lr policy step, loss window, data position and RNG states, so ``restore`` continues exactly where
the run stopped.

Under ``torchrun`` (a process group is initialized) the net is wrapped in DistributedDataParallel
and the data source is expected to be sharded by rank (``ShardedSource``): gradients are summed
over ranks (not averaged) and the update divides by world x iter_size, so one iteration of w
ranks with iter_size k equals one process with iter_size w x k. The reported loss is the mean over
all ranks' passes; rank 0 alone writes snapshots, whose solver state keeps every rank's data
position and RNG.

With iter_size 1, no ``clip_gradients`` and one process, each parameter is updated during the
backward pass as soon as its gradient is complete (``CaffeSGD.arm``): the same numbers, without a
full set of gradients in memory at once (``update_in_backward=False`` turns it off).
"""
from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

from convert.errors import CaffeFormatError
from convert.train_net import ParamSpec
from fcn_ref.distributed import gather_objects, rank_and_world, sum_float, sum_hook
from fcn_ref.train.config import solver_type
from fcn_ref.train.data import DataSource
from fcn_ref.train.lr_policy import LearningRate
from fcn_ref.train.update_rules import update_rule

STATE_FORMAT = "fcn-ref-solverstate/1"
Tester = Callable[["Solver"], dict[str, float]]


def owned_once(net: nn.Module) -> list[str]:
    """The parameters that exactly one module holds (tied ones are shared by several): only these
    may be updated block by block during the backward pass (``CaffeSGD.arm``)."""
    holders: dict[int, int] = {}
    for module in net.modules():
        for p in module._parameters.values():
            if p is not None:
                holders[id(p)] = holders.get(id(p), 0) + 1
    return [name for name, p in net.named_parameters() if holders[id(p)] == 1]


@dataclass
class IterationRecord:
    """What one iteration reports (one JSONL line)."""

    iteration: int
    loss: float
    smoothed_loss: float
    lr: float
    seconds: float


class SolverEvents:
    """Callbacks for progress display and logging; the defaults do nothing."""

    def on_iteration(self, solver: "Solver", record: IterationRecord) -> None: ...

    def on_test(self, solver: "Solver", scores: dict[str, float]) -> None: ...

    def on_snapshot(self, solver: "Solver", weights: Path, state: Path) -> None: ...

    def close(self, solver: "Solver") -> None: ...


@dataclass
class Solver:
    """Train ``net`` on ``data`` as Caffe's solver of ``param``'s type does (``param``: a SolverParameter).

    ``specs``: lr/decay multipliers by parameter name (missing: 1/1). ``loss_weights``: the tops
    the objective sums (default: the net's own ``loss_weights``). ``save_weights(path)`` writes the
    weights file of a snapshot. ``testers`` are called at test points and return named scores.
    """

    net: nn.Module
    data: DataSource
    param: object
    specs: dict[str, ParamSpec] = field(default_factory=dict)
    loss_weights: dict[str, float] | None = None
    save_weights: Callable[[Path], None] | None = None
    testers: list[Tester] = field(default_factory=list)
    events: SolverEvents = field(default_factory=SolverEvents)
    device: torch.device | str = "cpu"
    snapshot_prefix: str | None = None
    update_in_backward: bool | None = None  # None: whenever CaffeSGD.can_update_in_backward (one process)

    def __post_init__(self) -> None:
        p = self.param
        self.device = torch.device(self.device)
        if self.device.type == "cuda" and self.device.index is None:  # DDP and the RNG state name the GPU
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.net.to(self.device).train()
        if self.loss_weights is None:
            self.loss_weights = dict(getattr(self.net, "loss_weights", {}))
        if not self.loss_weights:
            raise CaffeFormatError("the net has no loss (no top with a loss weight)")
        self.iteration = 0
        self.learning_rate = LearningRate(p)
        self.rank, self.world = rank_and_world()
        self.rule = update_rule(p)(self.net.named_parameters(), self.specs, momentum=p.momentum,
                                   weight_decay=p.weight_decay, regularization=p.regularization_type,
                                   clip_gradients=p.clip_gradients, iter_size=p.iter_size * self.world)
        possible = self.world == 1 and self.rule.can_update_in_backward()
        if self.update_in_backward is None:
            self.update_in_backward = possible
        elif self.update_in_backward and not possible:
            raise ValueError("update_in_backward needs iter_size 1, no clip_gradients and one process")
        self._by_rows = owned_once(self.net)
        self.runner: nn.Module = self.net
        if self.world > 1:  # after the update rule: frozen blobs must already have requires_grad False
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.runner = DistributedDataParallel(self.net, device_ids=ids)
            self.runner.register_comm_hook(None, sum_hook)
        self.recent_losses: deque[float] = deque(maxlen=max(1, p.average_loss))
        self.stop_requested = False
        if self.snapshot_prefix is None:
            self.snapshot_prefix = p.snapshot_prefix

    # ------------------------------------------------------------------ one iteration

    def objective(self, outputs: dict[str, Tensor]) -> Tensor:
        total = None
        for top, weight in self.loss_weights.items():
            term = outputs[top].sum() * weight if weight != 1 else outputs[top].sum()
            total = term if total is None else total + term
        return total

    def forward_backward(self, sync: bool = True) -> float:
        """One pass; ``sync`` False skips DDP's gradient all-reduce (all but the last of iter_size)."""
        batch = {k: v.to(self.device, non_blocking=True) for k, v in self.data.next_batch().items()}
        context = self.runner.no_sync() if not sync and self.runner is not self.net else contextlib.nullcontext()
        with context:
            loss = self.objective(self.runner(**batch))
            loss.backward()
        return float(loss.detach())

    def _iteration_loss(self, total: np.float32) -> float:
        """The mean of this iteration's pass losses, over every rank's passes."""
        if self.world > 1:
            total = np.float32(sum_float(float(total)))
        return float(np.float32(total / np.float32(self.param.iter_size * self.world)))

    def test(self) -> dict[str, float]:
        scores: dict[str, float] = {}
        self.net.eval()
        try:
            with torch.no_grad():
                for tester in self.testers:
                    scores.update(tester(self))
        finally:
            self.net.train()
        self.events.on_test(self, scores)
        return scores

    def _test_due(self) -> bool:
        interval = self.param.test_interval
        return bool(self.testers) and interval > 0 and self.iteration % interval == 0 and (
            self.iteration > 0 or self.param.test_initialization)

    def step(self, iterations: int) -> None:
        """Run ``iterations`` iterations (fewer if a stop is requested, e.g. by Ctrl-C)."""
        stop = self.iteration + iterations
        while self.iteration < stop and not self.stop_requested:
            start = time.perf_counter()
            self.rule.zero_grad()
            if self._test_due():
                self.test()
            loss = np.float32(0)
            if self.update_in_backward:
                rate = self.learning_rate(self.iteration)
                self.rule.arm(rate, by_rows=self._by_rows)
                try:
                    loss = np.float32(self.forward_backward())
                except BaseException:
                    self.rule.disarm()
                    raise
                self.rule.finish()
            else:
                for index in range(self.param.iter_size):
                    last = index == self.param.iter_size - 1
                    loss = np.float32(loss + np.float32(self.forward_backward(sync=last)))
                rate = self.learning_rate(self.iteration)
                self.rule.step(rate)
            loss = self._iteration_loss(loss)
            self.recent_losses.append(loss)
            record = IterationRecord(self.iteration, loss, float(np.mean(self.recent_losses)), rate,
                                     time.perf_counter() - start)
            self.iteration += 1
            self.events.on_iteration(self, record)
            if self.param.snapshot and self.iteration % self.param.snapshot == 0:
                self.snapshot()

    def solve(self) -> None:
        """Train to ``max_iter`` as ``Solver::Solve`` does; Ctrl-C snapshots, then stops."""
        with _stop_on_interrupt(self):
            self.step(self.param.max_iter - self.iteration)
        if self.stop_requested:
            self.snapshot()
            self.events.close(self)
            return
        if self.param.snapshot_after_train and (not self.param.snapshot
                                                or self.iteration % self.param.snapshot != 0):
            self.snapshot()
        if self.testers and self.param.test_interval and self.iteration % self.param.test_interval == 0:
            self.test()
        self.events.close(self)

    # ------------------------------------------------------------------ snapshots and resume

    def snapshot_paths(self) -> tuple[Path, Path]:
        prefix = self.snapshot_prefix or "snapshot"
        return Path(f"{prefix}_iter_{self.iteration}.pth"), Path(f"{prefix}_iter_{self.iteration}.solverstate")

    def state_dict(self, weights_file: str) -> dict:
        state = {
            "format": STATE_FORMAT,
            "iteration": self.iteration,
            "learned_net": weights_file,
            "solver_type": solver_type(self.param),
            "history": self.rule.state_dict(),
            "current_step": self.learning_rate.current_step,
            "recent_losses": list(self.recent_losses),
            "data": self.data.state_dict(),
            **self.rng_state(),
        }
        if self.world > 1:  # every rank reads its own shard and draws its own dropout masks
            state["ranks"] = gather_objects({"data": self.data.state_dict(), **self.rng_state()})
        return state

    def rng_state(self) -> dict[str, Tensor]:
        """The generators the net draws from: torch's CPU one, and on CUDA the device's (Dropout)."""
        state = {"torch_rng": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def set_rng_state(self, state: dict) -> None:
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and self.device.type == "cuda":  # a CPU run's state has none to give
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)

    def snapshot(self) -> tuple[Path, Path]:
        if self.save_weights is None:
            raise RuntimeError("this solver has no save_weights function; it cannot snapshot")
        weights, state = self.snapshot_paths()
        solver_state = self.state_dict(weights.name)  # every rank takes part (it gathers)
        if self.rank != 0:
            return weights, state
        if weights.parent and not weights.parent.exists():
            weights.parent.mkdir(parents=True, exist_ok=True)
        self.save_weights(weights)
        _atomic_save(solver_state, state)
        self.events.on_snapshot(self, weights, state)
        return weights, state

    def restore(self, state_path: str | os.PathLike, load_weights: Callable[[Path], dict[str, Tensor]]) -> None:
        """Continue from a solver state: weights from the file it names (``load_weights`` reads it
        into a state dict), then iteration, history, lr step, loss window, data and RNG."""
        state_path = Path(state_path)
        try:
            state = torch.load(state_path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise CaffeFormatError(f"not a solver state: {e}".splitlines()[0], path=str(state_path)) from None
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise CaffeFormatError(f"not a solver state (format is not {STATE_FORMAT})", path=str(state_path))
        written_by = state.get("solver_type", "SGD")
        if written_by != solver_type(self.param):
            raise CaffeFormatError(f"solver state was written by {_article(written_by)} solver, not by "
                                   f"{_article(solver_type(self.param))} one", path=str(state_path))
        weights = load_weights(state_path.parent / state["learned_net"])
        with torch.no_grad():
            for name, param in self.net.named_parameters():
                if name not in weights:
                    raise CaffeFormatError(f"snapshot has no blob {name}", path=state["learned_net"])
                param.copy_(weights[name])
        self.iteration = int(state["iteration"])
        self.rule.load_state_dict(state["history"])
        self.learning_rate.current_step = int(state["current_step"])
        self.recent_losses.clear()
        self.recent_losses.extend(state["recent_losses"])
        ranks = state.get("ranks")
        if ranks is not None and len(ranks) != self.world:
            raise CaffeFormatError(f"solver state was written by {len(ranks)} ranks, not {self.world}",
                                   path=str(state_path))
        if self.world > 1 and ranks is None:
            raise CaffeFormatError("solver state was written by one process, not by torchrun", path=str(state_path))
        mine = ranks[self.rank] if ranks is not None else state
        self.data.load_state_dict(mine["data"])
        self.set_rng_state(mine)


def _article(word: str) -> str:
    return f"{'an' if word[0] in 'AEIOU' else 'a'} {word}"


def _atomic_save(obj: object, out: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _stop_on_interrupt:
    """Within the block, the first Ctrl-C asks the solver to stop after the current iteration (so
    the snapshot it then writes is consistent); a second one interrupts at once."""

    def __init__(self, solver: Solver) -> None:
        self.solver = solver
        self.previous = None

    def _handle(self, signum, frame) -> None:
        if self.solver.stop_requested:
            raise KeyboardInterrupt
        self.solver.stop_requested = True

    def __enter__(self) -> None:
        try:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self.previous = None

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
