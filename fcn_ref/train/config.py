"""Caffe's solver file (a text ``SolverParameter``) read and checked, and the nets it names.

Paths inside the file (``net``, ``train_net``, ``test_net``, ``snapshot_prefix``, and the sources
the nets' data layers name) are used as Caffe uses them: relative to the process's working
directory, not to the solver file. Every BVLC solver type is implemented (``update_rules``); an
unknown one, and what Caffe's solver constructors refuse, are one-line errors.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format

from convert.errors import CaffeFormatError
from convert.schema import NetParameter, SolverParameter

LR_POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")
SOLVER_TYPE_NAMES = {0: "SGD", 1: "Nesterov", 2: "AdaGrad", 3: "RMSProp", 4: "AdaDelta", 5: "Adam"}
# What each solver type's constructor CHECKs (include/caffe/sgd_solvers.hpp): (test, message).
SOLVER_TYPE_CHECKS = {
    "AdaGrad": [(lambda p: p.momentum == 0, "momentum cannot be used with AdaGrad")],
    "RMSProp": [(lambda p: p.momentum == 0, "momentum cannot be used with RMSProp"),
                (lambda p: 0 <= p.rms_decay < 1, "rms_decay should lie between 0 and 1")],
}


@dataclass
class NetSource:
    """A net the solver names: its parameters and where they came from (for messages)."""

    proto: NetParameter
    origin: str


def parse_solver_text(text: str, origin: str = "<solver>") -> SolverParameter:
    """A SolverParameter from prototxt text, checked (see ``check``)."""
    try:
        param = text_format.Parse(text, SolverParameter())
    except text_format.ParseError as e:
        raise CaffeFormatError(f"solver syntax error at line {e}", path=origin) from None
    check(param, origin)
    return param


def read_solver(path: str | os.PathLike) -> SolverParameter:
    p = Path(path)
    if not p.is_file():
        raise CaffeFormatError("no such solver file", path=str(p))
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CaffeFormatError("not a text solver prototxt", path=str(p)) from None
    return parse_solver_text(text, str(p))


def solver_type(param: SolverParameter) -> str:
    """The solver type as Caffe resolves it: ``type``, or the legacy ``solver_type`` enum
    (``upgrade_proto.cpp``'s ``UpgradeSolverType``; ``check`` refuses both at once, as Caffe does)."""
    if param.HasField("type"):
        return param.type
    return SOLVER_TYPE_NAMES[param.solver_type]


def check(param: SolverParameter, origin: str) -> None:
    """Refuse what Caffe would refuse, and what we do not implement, in one line each."""
    if param.HasField("type") and param.HasField("solver_type"):
        raise CaffeFormatError("give the solver type once: the legacy solver_type enum and type cannot both be set",
                               path=origin)
    kind = solver_type(param)
    if kind not in SOLVER_TYPE_NAMES.values():
        raise CaffeFormatError(f"unknown solver type '{kind}' (known: {', '.join(SOLVER_TYPE_NAMES.values())})",
                               path=origin)
    for test, message in SOLVER_TYPE_CHECKS.get(kind, []):
        if not test(param):
            raise CaffeFormatError(message, path=origin)
    if not param.HasField("base_lr"):
        raise CaffeFormatError("base_lr is not set", path=origin)
    if param.lr_policy not in LR_POLICIES:
        raise CaffeFormatError(f"unknown lr_policy '{param.lr_policy}' (known: {', '.join(LR_POLICIES)})",
                               path=origin)
    if param.regularization_type not in ("L1", "L2"):
        raise CaffeFormatError(f"unknown regularization_type '{param.regularization_type}'", path=origin)
    if param.iter_size < 1:
        raise CaffeFormatError("iter_size must be at least 1", path=origin)
    if param.lr_policy == "step" and param.stepsize <= 0:
        raise CaffeFormatError("lr_policy step needs stepsize > 0", path=origin)
    if param.lr_policy == "poly" and param.max_iter <= 0:
        raise CaffeFormatError("lr_policy poly needs max_iter > 0", path=origin)
    train = [f for f in ("net", "net_param", "train_net", "train_net_param") if param.HasField(f)]
    if len(train) != 1:
        raise CaffeFormatError("give exactly one of net, net_param, train_net, train_net_param "
                               f"(found {', '.join(train) or 'none'})", path=origin)
    if param.test_interval and len(param.test_iter) == 0 and (param.test_net or param.test_net_param
                                                               or param.HasField("net")
                                                               or param.HasField("net_param")):
        raise CaffeFormatError("test_interval is set but test_iter is not", path=origin)


def _read_net(path: str, origin: str) -> NetSource:
    p = Path(path)
    if not p.is_file():
        raise CaffeFormatError(f"net file '{path}' (relative to the working directory, as in Caffe) "
                               "does not exist", path=origin)
    try:
        proto = text_format.Parse(p.read_text(encoding="utf-8"), NetParameter())
    except text_format.ParseError as e:
        raise CaffeFormatError(f"prototxt syntax error at line {e}", path=str(p)) from None
    return NetSource(proto, str(p))


def train_net(param: SolverParameter, origin: str = "<solver>") -> NetSource:
    """The net Caffe trains (``Solver::InitTrainNet``'s choice)."""
    if param.HasField("train_net_param"):
        return NetSource(param.train_net_param, f"{origin} (train_net_param)")
    if param.HasField("train_net"):
        return _read_net(param.train_net, origin)
    if param.HasField("net_param"):
        return NetSource(param.net_param, f"{origin} (net_param)")
    return _read_net(param.net, origin)


def test_nets(param: SolverParameter, origin: str = "<solver>") -> list[NetSource]:
    """The nets Caffe tests (``Solver::InitTestNets``): test_net_param, then test_net, then, when
    test_iter asks for more, the general ``net``/``net_param`` in the TEST phase."""
    nets = [NetSource(p, f"{origin} (test_net_param)") for p in param.test_net_param]
    nets += [_read_net(path, origin) for path in param.test_net]
    if len(param.test_iter) > len(nets):
        if param.HasField("net_param"):
            nets += [NetSource(param.net_param, f"{origin} (net_param)")] * (len(param.test_iter) - len(nets))
        elif param.HasField("net"):
            nets += [_read_net(param.net, origin)] * (len(param.test_iter) - len(nets))
    if len(param.test_iter) != len(nets):
        raise CaffeFormatError(f"{len(nets)} test nets but {len(param.test_iter)} test_iter values", path=origin)
    return nets
