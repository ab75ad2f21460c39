"""Every zoo model rebuilds from its config: the same keys, shapes and settings, for every field."""
from __future__ import annotations

import io
from dataclasses import fields

import pytest
import torch

from fcn_ref import configs
from fcn_ref.models import ARCHITECTURES, build

# A value other than the default for every constructor argument any config has.
CHANGED = {
    "num_classes": 5, "num_geometric": 2, "in_channels": 2, "widths": (2, 4, 2, 2, 4), "fc_widths": (3, 2),
    "learn_upsampling": True, "deconv_bias": ("score2", "upsample"),
    "inception_widths": ((2, 2, 3, 1, 2, 1),) * 9,
}


def _settings(model: torch.nn.Module) -> dict:
    """Everything build must reproduce: each tensor's shape and trainability, and each layer's repr."""
    return {"tensors": {k: (tuple(p.shape), p.requires_grad) for k, p in model.state_dict(keep_vars=True).items()},
            "layers": {path: repr(m) for path, m in model.named_modules() if not list(m.children())}}


CASES = [(name, f.name) for name, cls in sorted(ARCHITECTURES.items()) for f in fields(cls.config_class)]


def test_every_field_has_a_changed_value():
    assert {field for _, field in CASES} == set(CHANGED)


@pytest.mark.parametrize("name, field", CASES)
def test_every_constructor_argument_round_trips(name, field):
    cls = ARCHITECTURES[name]
    value = CHANGED[field]
    if field == "in_channels" and name == "nyud-fcn32s-color-d":
        value = 5
    if field == "widths" and name == "fcn-googlenet":  # its stem: conv1, conv2 reduce, conv2
        value = (2, 4, 2)
    with torch.device("meta"):
        model = cls(**{field: value})
        assert getattr(model.config, field) == value != getattr(cls.config_class(), field)
        for again in (build(model.config), build(model.architecture)):
            assert type(again) is cls and again.config == model.config
            assert _settings(again) == _settings(model)
    stored = io.BytesIO()  # the architecture a file stores is plain data that torch.load reads safely
    torch.save(model.architecture, stored)
    stored.seek(0)
    assert torch.load(stored, weights_only=True) == model.architecture


def test_each_model_has_its_own_config_class_naming_it():
    assert {cls.config_class.arch: cls for cls in ARCHITECTURES.values()} == ARCHITECTURES
    assert all(issubclass(cls.config_class, configs.FCNConfig) for cls in ARCHITECTURES.values())
    assert repr(ARCHITECTURES["fcn8s"].config_class(num_classes=3)).startswith("FCN8sConfig(num_classes=3,")


def test_learned_upsampling_is_a_setting_that_survives():
    with torch.device("meta"):
        model = ARCHITECTURES["fcn8s"](learn_upsampling=True)
        assert build(model.architecture).head.upscore8.weight.requires_grad
