"""What a long run shows and leaves behind: a progress bar, a JSONL log, a plot.

- tqdm bar (if tqdm is installed) with the smoothed loss, lr and iterations per second; without
  tqdm, Caffe-style lines every ``display`` iterations.
- JSONL log: one line per iteration {"iteration", "loss", "smoothed_loss", "lr", "seconds"}, one
  per test point {"iteration", "scores": {...}}, one per snapshot {"iteration", "snapshot"}.
- PNG plot (if matplotlib is installed): loss over iterations, and mean IU (or the first score)
  at the test points, redrawn at every snapshot and at the end.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from fcn_ref.train.solver import IterationRecord, Solver, SolverEvents


class RunProgress(SolverEvents):
    def __init__(self, *, log_path: str | Path | None = None, plot_path: str | Path | None = None,
                 total: int = 0, start: int = 0, display: int = 0, bar: bool = True) -> None:
        self.log = open(log_path, "a", encoding="utf-8") if log_path else None
        self.plot_path = Path(plot_path) if plot_path else None
        self.display = display
        self.losses: list[tuple[int, float]] = []
        self.scores: list[tuple[int, dict[str, float]]] = []
        self.bar = None
        if bar:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, initial=start, unit="it", dynamic_ncols=True, file=sys.stderr)
            except ImportError:
                self.bar = None

    def _write(self, entry: dict) -> None:
        if self.log is not None:
            self.log.write(json.dumps(entry) + "\n")
            self.log.flush()

    def on_iteration(self, solver: Solver, record: IterationRecord) -> None:
        self.losses.append((record.iteration, record.loss))
        self._write(vars(record))
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{record.smoothed_loss:.4g}", lr=f"{record.lr:.3g}", refresh=False)
            self.bar.update(1)
        elif self.display and record.iteration % self.display == 0:
            print(f"Iteration {record.iteration}, loss = {record.smoothed_loss:.6g}, lr = {record.lr:.6g}",
                  file=sys.stderr, flush=True)

    def on_test(self, solver: Solver, scores: dict[str, float]) -> None:
        self.scores.append((solver.iteration, scores))
        self._write({"iteration": solver.iteration, "scores": scores})
        text = ", ".join(f"{k} = {v:.6g}" for k, v in scores.items())
        (self.bar.write if self.bar is not None else lambda s: print(s, file=sys.stderr))(
            f"Iteration {solver.iteration}, Testing net: {text}")

    def on_snapshot(self, solver: Solver, weights: Path, state: Path) -> None:
        self._write({"iteration": solver.iteration, "snapshot": str(weights), "state": str(state)})
        self.plot()

    def close(self, solver: Solver) -> None:
        if self.bar is not None:
            self.bar.close()
        self.plot()
        if self.log is not None:
            self.log.close()
            self.log = None

    def plot(self) -> None:
        if self.plot_path is None or not self.losses:
            return
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return
        fig, ax = plt.subplots(figsize=(8, 4.5))
        its, values = zip(*self.losses)
        ax.plot(its, values, lw=0.8, color="tab:blue")
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss", color="tab:blue")
        if self.scores:
            key = next((k for k in self.scores[-1][1] if "mean_iu" in k), next(iter(self.scores[-1][1]), None))
            points = [(i, s[key]) for i, s in self.scores if key in s]
            if points:
                twin = ax.twinx()
                twin.plot(*zip(*points), "o-", color="tab:orange")
                twin.set_ylabel(key, color="tab:orange")
        fig.tight_layout()
        fig.savefig(self.plot_path, dpi=100)
        plt.close(fig)
