"""Loss sampling (FCN paper, sections 3.4 and 4.3, figure 5): keep each output cell's loss with
probability ``keep`` and ignore the rest.

Why it stands for patchwise training: a patch sampled from an image contributes the loss of the
cells inside it; drawing a random subset of the whole image's cells instead ("sampling the loss")
gives a gradient over a random subset of the same spatial terms, with the efficiency of whole-image
computation kept. The paper found that, at equal wall-clock time, whole-image training (keep 1)
converges as well or faster; this option lets one reproduce that comparison.

It is done on the label: a dropped cell's label becomes ``ignore_label``, so SoftmaxWithLoss
(with that ``ignore_label``) leaves it out of the loss and its gradient, and normalization VALID
counts only the kept cells, as in Caffe. ``cell`` > 1 drops ``cell`` x ``cell`` blocks (e.g. 32 for
the cells of FCN-32s's coarse output) rather than single pixels. The mask comes from our own
seeded generator, kept in the solver state so a resumed run draws the same masks.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from fcn_ref.train.data import DataSource


class LossSampling:
    """Wrap a data source: each batch's ``label_top`` keeps a cell with probability ``keep``."""

    def __init__(self, source: DataSource, keep: float, *, label_top: str = "label", ignore_label: int = 255,
                 cell: int = 1, seed: int = 0) -> None:
        if not 0 < keep <= 1:
            raise ValueError(f"loss sampling keeps a cell with probability in (0, 1], not {keep}")
        if label_top not in source.tops:
            raise ValueError(f"no top {label_top!r} to sample the loss on (tops: {', '.join(source.tops)})")
        if cell < 1:
            raise ValueError(f"cell must be at least 1, not {cell}")
        self.source, self.keep, self.label_top = source, keep, label_top
        self.ignore_label, self.cell = ignore_label, cell
        self.tops = source.tops
        self.rng = np.random.default_rng(seed)

    def mask(self, shape: tuple[int, ...]) -> np.ndarray:
        """True where a cell's loss is dropped: one draw per ``cell`` x ``cell`` block of the last two axes."""
        *lead, h, w = shape
        blocks = self.rng.random((*lead, -(-h // self.cell), -(-w // self.cell))) >= self.keep
        return blocks.repeat(self.cell, axis=-2).repeat(self.cell, axis=-1)[..., :h, :w]

    def peek_shapes(self) -> dict[str, tuple[int, ...]]:
        return self.source.peek_shapes()

    def next_batch(self) -> dict[str, Tensor]:
        batch = dict(self.source.next_batch())
        label = batch[self.label_top]
        if self.keep < 1:
            drop = torch.from_numpy(self.mask(tuple(label.shape)))
            batch[self.label_top] = label.masked_fill(drop, float(self.ignore_label))
        return batch

    def state_dict(self) -> dict:
        return {"source": self.source.state_dict(), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.source.load_state_dict(state["source"])
        self.rng.bit_generator.state = state["rng"]
