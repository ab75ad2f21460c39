"""Training the zoo models (``fcn_ref.FCN32s`` ...) with the same solver as Caffe nets.

``param_specs`` gives each parameter the lr/decay multipliers the reference train prototxts give
its Caffe layer (found through ``fcn_ref.caffe_names``); ``WithLoss`` puts Caffe's SoftmaxWithLoss
on the model's score, so ``Solver(WithLoss(model), data, param, specs=param_specs(model, "model."))``
trains it exactly as Caffe trains the equivalent net. Snapshots: ``save_weights=lambda path:
fcn_ref.save(model, path, overwrite=True)``; ``Solver.restore(state, load_weights(model, "model."))``.

The reference nets' multipliers (shelhamer/fcn.berkeleyvision.org train.prototxt files):
- convolutions (and the fc6/fc7/score layers): weight 1/1, bias 2/0;
- deconvolutions: frozen (lr_mult 0: fixed bilinear), except the CVPR nets' learned ``score2``
  and ``score4``, which train as convolutions;
- the at-once net's ``scale_pool4`` / ``scale_pool3``: frozen;
- FCN-AlexNet: only ``score_fr`` has specs (1/1, 2/0); the trunk takes Caffe's default 1/1 for
  weights and biases alike.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from convert.checkpoint import read_checkpoint

from convert.modules import Deconvolution, Scale
from convert.train_net import ParamSpec
from convert.training_layers import SoftmaxWithLoss
from fcn_ref.caffe_names import _key_map, caffe_layer_names

WEIGHT, BIAS, FROZEN, DEFAULT = ParamSpec(1.0, 1.0), ParamSpec(2.0, 0.0), ParamSpec(0.0, 0.0), ParamSpec(1.0, 1.0)
LEARNED_DECONVOLUTIONS = frozenset({"score2", "score4"})  # CVPR-era nets


def _spec(model: nn.Module, module: nn.Module, caffe_layer: str, blob: str) -> ParamSpec:
    if isinstance(module, (Deconvolution, nn.ConvTranspose2d)) and caffe_layer not in LEARNED_DECONVOLUTIONS:
        return FROZEN
    if isinstance(module, Scale):
        return FROZEN
    if type(model).__name__ == "FCNAlexNet" and caffe_layer != "score_fr":
        return DEFAULT
    return BIAS if blob == "bias" else WEIGHT


def param_specs(model: nn.Module, prefix: str = "") -> dict[str, ParamSpec]:
    """``<prefix><parameter name>`` -> its ParamSpec, by the rules in the module docstring."""
    names = caffe_layer_names(model)
    specs = {}
    for key, _ in model.named_parameters():
        path, blob = key.rsplit(".", 1)
        specs[prefix + key] = _spec(model, model.get_submodule(path), names[path], blob)
    return specs


class WithLoss(nn.Module):
    """``model`` plus SoftmaxWithLoss on its score, called with the data layer's tops by name
    (``data``, ``label``); returns ``score`` and ``loss``. ``normalization`` is Caffe's mode:
    BATCH_SIZE for the heavy nets' ``normalize: false``, VALID for the CVPR-era and AlexNet nets."""

    def __init__(self, model: nn.Module, *, ignore_label: int | None = 255, normalization: str = "BATCH_SIZE") -> None:
        super().__init__()
        self.model = model
        self.loss = SoftmaxWithLoss(1, ignore_label, normalization)
        self.loss_weights = {"loss": 1.0}

    def forward(self, data: Tensor, label: Tensor) -> dict[str, Tensor]:
        score = self.model(data)
        return {"score": score, "loss": self.loss(score, label)}


def load_weights(model: nn.Module, prefix: str = "") -> Callable[[Path], dict[str, Tensor]]:
    """For ``Solver.restore``: a snapshot's tensors (Caffe names) under the solver net's names."""
    inverse = {caffe: key for key, caffe in _key_map(model).items()}

    def load(path: Path) -> dict[str, Tensor]:
        state = read_checkpoint(path).state_dict
        return {prefix + inverse[name]: torch.as_tensor(tensor) for name, tensor in state.items() if name in inverse}

    return load
