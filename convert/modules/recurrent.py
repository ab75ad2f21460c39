"""Caffe's recurrent layers, RNN and LSTM, as the unrolled nets Caffe builds for them.

Caffe runs a recurrent layer by unrolling it into a small net over the T time steps of its input
(``RNNLayer::FillUnrolledNet``, ``LSTMLayer::FillUnrolledNet``): bottoms ``x`` (T, N, ...) and
``cont`` (T, N), optionally a static input (N, ...) added at every step and, with ``expose_hidden``,
the initial state; the state is multiplied by ``cont_t`` before each step, so a 0 starts a new
sequence. Without ``expose_hidden`` a fresh Caffe net starts from a zero state, and so does every
call here (Caffe carries the last state into its next forward, which only shows where the first
``cont`` of the next call is not 0).

Weights, in Caffe's blob order: LSTM ``W_xc`` (4H, D), ``b_c`` (4H), [``W_xc_static`` (4H, Ds)],
``W_hc`` (4H, H), gates in the order i, f, o, g; RNN ``W_xh`` (H, D), ``b_h`` (H), [``W_xh_static``],
``W_hh`` (H, H), ``W_ho`` (H, H), ``b_o`` (H).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def _steps(x: Tensor, cont: Tensor, static: Tensor | None, weight: Tensor, bias: Tensor,
           static_weight: Tensor | None) -> tuple[Tensor, Tensor]:
    """The input transform of every step at once (T, N, G), with the static part added, and
    ``cont`` as (T, N, 1)."""
    T, N = x.shape[:2]
    if cont.shape != (T, N):
        raise ValueError(f"cont must be (T, N) = {(T, N)}, got {tuple(cont.shape)}")
    projected = x.reshape(T, N, -1) @ weight.t() + bias
    if static is not None:
        projected = projected + (static.reshape(N, -1) @ static_weight.t()).unsqueeze(0)
    return projected, cont.reshape(T, N, 1).to(x.dtype)


def lstm_unit(c_prev: Tensor, gates: Tensor, cont: Tensor) -> tuple[Tensor, Tensor]:
    """Caffe's LSTMUnit: gates (..., 4H) in the order i, f, o, g; the forget gate is cont * f, and
    exactly 0 where cont is 0. Returns (c, h)."""
    H = c_prev.shape[-1]
    i, f, o = (torch.sigmoid(gates[..., k * H:(k + 1) * H]) for k in range(3))
    g = torch.tanh(gates[..., 3 * H:])
    f = torch.where(cont == 0, torch.zeros_like(f), cont * f)
    c = f * c_prev + i * g
    return c, o * torch.tanh(c)


class LSTMUnit(nn.Module):
    """The one-step layer LSTM unrolls into, usable on its own: bottoms c_prev (1, N, H), gates
    (1, N, 4H), cont (1, N); tops c and h (1, N, H)."""

    multi_output = True

    def forward(self, c_prev: Tensor, gates: Tensor, cont: Tensor) -> tuple[Tensor, Tensor]:
        if gates.shape[-1] != 4 * c_prev.shape[-1] or cont.shape != c_prev.shape[:-1]:
            raise ValueError(f"LSTMUnit: shapes {tuple(c_prev.shape)}, {tuple(gates.shape)}, "
                             f"{tuple(cont.shape)} do not fit (1, N, H), (1, N, 4H), (1, N)")
        return lstm_unit(c_prev, gates, cont.unsqueeze(-1).to(c_prev.dtype))


class Recurrent(nn.Module):
    """What RNN and LSTM share: bottoms (x, cont, [static], [initial state]) and tops."""

    def __init__(self, hidden: int, static_input: bool, expose_hidden: bool) -> None:
        super().__init__()
        self.hidden, self.static_input, self.expose_hidden = hidden, static_input, expose_hidden
        self.multi_output = expose_hidden

    def _split(self, bottoms: tuple[Tensor, ...], states: int) -> tuple[Tensor, Tensor, Tensor | None, list]:
        x, cont, rest = bottoms[0], bottoms[1], list(bottoms[2:])
        static = rest.pop(0) if self.static_input else None
        initial = [s.reshape(s.shape[-2], s.shape[-1]) for s in rest] if self.expose_hidden else \
            [x.new_zeros(x.shape[1], self.hidden)] * states
        return x, cont, static, initial


class LSTM(Recurrent):
    """c_t = cont_t f_t c_{t-1} + i_t g_t, h_t = o_t tanh(c_t); gates from
    W_hc (cont_t h_{t-1}) + W_xc x_t + b_c (+ W_xc_static x_static). Top: h (T, N, H)
    [, h_T, c_T (1, N, H) with expose_hidden]."""

    def forward(self, *bottoms: Tensor) -> Tensor | tuple[Tensor, ...]:
        x, cont, static, (h, c) = self._split(bottoms, 2)
        gates_x, conts = _steps(x, cont, static, self.W_xc, self.b_c,
                                getattr(self, "W_xc_static", None))
        outputs = []
        for t in range(x.shape[0]):
            c, h = lstm_unit(c, (conts[t] * h) @ self.W_hc.t() + gates_x[t], conts[t])
            outputs.append(h)
        top = torch.stack(outputs)
        return (top, h.unsqueeze(0), c.unsqueeze(0)) if self.expose_hidden else top


class RNN(Recurrent):
    """h_t = tanh(W_hh (cont_t h_{t-1}) + W_xh x_t + b_h (+ W_xh_static x_static)),
    o_t = tanh(W_ho h_t + b_o). Top: o (T, N, H) [, h_T (1, N, H) with expose_hidden]."""

    def forward(self, *bottoms: Tensor) -> Tensor | tuple[Tensor, ...]:
        x, cont, static, (h,) = self._split(bottoms, 1)
        inputs, conts = _steps(x, cont, static, self.W_xh, self.b_h, getattr(self, "W_xh_static", None))
        outputs = []
        for t in range(x.shape[0]):
            h = torch.tanh((conts[t] * h) @ self.W_hh.t() + inputs[t])
            outputs.append(torch.tanh(h @ self.W_ho.t() + self.b_o))
        top = torch.stack(outputs)
        return (top, h.unsqueeze(0)) if self.expose_hidden else top
