"""Update in backward, block by block (``convert.trainpath.RowUpdate`` on the "gemm" path): every
solver type gives ``step``'s numbers, the weight's gradient never exists whole, and a weight used
twice or tied between modules falls back to the whole gradient."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from convert import trainpath
from convert.train_net import ParamSpec
from fcn_ref.blocks import Conv2d
from fcn_ref.train.sgd import CaffeSGD
from fcn_ref.train.solver import owned_once
from fcn_ref.train.update_rules import RULES

EXTRA = {"SGD": {}, "Nesterov": {}, "AdaGrad": {"delta": 1e-8}, "RMSProp": {"delta": 1e-8, "rms_decay": 0.98},
         "AdaDelta": {"delta": 1e-6}, "Adam": {"momentum2": 0.999, "delta": 1e-8}}
MOMENTUM = {"SGD": 0.9, "Nesterov": 0.9, "AdaGrad": 0.0, "RMSProp": 0.0, "AdaDelta": 0.95, "Adam": 0.9}


class FcHead(nn.Module):
    """fc6-like: a 5x5 unpadded convolution (the "gemm" path), then a 1x1 one; ``twice`` runs the
    first convolution a second time on its own output, padded back to size (a weight with two uses)."""

    def __init__(self, twice: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc6, self.fc7, self.twice = Conv2d(6, 6, 5), Conv2d(6, 3, 1), twice

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = trainpath.PATHS["gemm"](self.fc6, x).relu()
        if self.twice:
            y = trainpath.PATHS["gemm"](self.fc6, nn.functional.pad(y, (2, 2, 2, 2))).relu()
        return trainpath.PATHS["gemm"](self.fc7, y)


def _train(kind: str, by_rows: bool, twice: bool = False, steps: int = 3) -> tuple[dict, CaffeSGD, list[int]]:
    net = FcHead(twice)
    specs = {"fc6.bias": ParamSpec(2.0, 0.0)}
    rule = RULES[kind][0](net.named_parameters(), specs, momentum=MOMENTUM[kind], weight_decay=5e-3,
                          **EXTRA[kind])
    torch.manual_seed(1)
    inputs = [torch.randn(2, 6, 9, 11) for _ in range(steps)]
    whole_gradients = []  # the fc6 weight gradients autograd accumulated (none when taken by rows)

    def count(param: torch.Tensor) -> None:
        if param.grad is not None:
            whole_gradients.append(1)

    net.fc6.weight.register_post_accumulate_grad_hook(count)
    for i, x in enumerate(inputs):
        rate = 0.01 * (i + 1)
        rule.zero_grad()
        if by_rows:
            rule.arm(rate, by_rows=owned_once(net))
            net(x).square().sum().backward()
            rule.finish()
        else:
            net(x).square().sum().backward()
            rule.step(rate)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}, rule, whole_gradients


@pytest.mark.parametrize("kind", sorted(RULES))
def test_block_by_block_update_gives_the_step_numbers(kind, monkeypatch):
    monkeypatch.setattr(trainpath, "ROW_BLOCK_BYTES", 2 * 6 * 25 * 4)  # 2 rows a block: 3 blocks
    plain, plain_rule, plain_seen = _train(kind, by_rows=False)
    rows, rows_rule, rows_seen = _train(kind, by_rows=True)
    assert len(plain_seen) == 3 and rows_seen == []  # fc6's gradient never existed whole
    for name, want in plain.items():
        assert not torch.equal(want, FcHead().state_dict()[name]), name  # the weights moved
        torch.testing.assert_close(rows[name], want, rtol=1e-6, atol=1e-9, msg=name)
    torch.testing.assert_close(rows_rule.state_dict(), plain_rule.state_dict(), rtol=1e-6, atol=1e-9)
    assert all(not hasattr(p, trainpath.ROW_UPDATE_ATTRIBUTE) for p in rows_rule.params.values())


def test_a_block_applied_at_another_rate_is_caught(monkeypatch):
    """The comparison above can fail: rows applied with the rate of another iteration differ."""
    monkeypatch.setattr(trainpath, "ROW_BLOCK_BYTES", 2 * 6 * 25 * 4)
    original = CaffeSGD._row_update

    def off_by_a_bit(self, name, rate):
        return original(self, name, rate * 1.001)

    monkeypatch.setattr(CaffeSGD, "_row_update", off_by_a_bit)
    plain, _, _ = _train("SGD", by_rows=False)
    rows, _, _ = _train("SGD", by_rows=True)
    assert not torch.allclose(rows["fc6.weight"], plain["fc6.weight"], rtol=1e-6, atol=1e-9)


def test_a_weight_used_twice_takes_the_whole_gradient():
    plain, _, _ = _train("SGD", by_rows=False, twice=True)
    rows, _, seen = _train("SGD", by_rows=True, twice=True)
    assert len(seen) == 3  # autograd's accumulated gradient, updated by the hook
    for name, want in plain.items():
        torch.testing.assert_close(rows[name], want, rtol=1e-6, atol=1e-9, msg=name)


def test_tied_parameters_are_not_updated_by_rows():
    a, b = nn.Conv2d(2, 2, 1), nn.Conv2d(2, 2, 1)
    b.weight = a.weight
    net = nn.Sequential(a, b)
    assert owned_once(net) == ["0.bias", "1.bias"]


def test_measuring_a_layer_leaves_its_weight_and_row_update_alone(monkeypatch):
    """The first training call measures the candidates on the layer's real weights: those runs must
    not reach a solver's ``RowUpdate`` (nor count as a use of the weight)."""
    from convert import fastpath, tuning

    monkeypatch.setenv("FCN_FASTPATH_CACHE", "off")
    monkeypatch.setattr(tuning, "_memory", {})
    monkeypatch.setattr(fastpath, "MIN_MEASURED_FLOPS", 0)
    ran = []
    monkeypatch.setattr(tuning, "time_candidates", lambda runs: {name: ran.append(run()) or 1.0 for name, run in runs.items()})
    torch.manual_seed(0)
    conv = Conv2d(6, 6, 5)
    before = conv.weight.detach().clone()
    applied = []
    update = trainpath.RowUpdate(lambda rows, g, last: applied.append(rows))
    trainpath.set_row_update(conv.weight, update)
    x = torch.randn(1, 6, 9, 9, requires_grad=True)
    assert "gemm" in trainpath.candidates(conv, x)
    trainpath.path(conv, x)
    assert len(ran) >= 3 and applied == [] and update.uses == 0
    assert torch.equal(conv.weight.detach(), before) and conv.weight.grad is None
