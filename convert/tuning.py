"""Choose among computations that give the same numbers, by measuring them on the machine at hand.

Why: which convolution algorithm is fastest depends on the CPU (a Winograd transform that paid on
an AMD EPYC may lose on an Intel Xeon with AMX), on the thread count and on torch's kernels, so a
table of thresholds measured on one machine is wrong on the next. And a faster candidate must not
cost accuracy. ``choose`` therefore decides in two steps, each remembered:

1. **Accuracy gate**, per layer and weights: every candidate runs on a deterministic random input
   (``|N(0, 1)|``, like post-ReLU activations; seeded from the layer's key) with the layer's real
   weights and real channels, its spatial size capped by the caller; its error is
   ``max|y - y64| / max|y64|`` against a float64 computation. A candidate passes when its error is
   at most ``ACCURACY_FACTOR`` times the baseline's (errors below ``ERROR_FLOOR``, one fp32 ulp of
   the range, count as the floor: they are rounding noise). A candidate that returns several
   tensors (``convert.trainpath``: output, input and weight gradients) must pass on each.
2. **Timing**, per layer shape on this machine: the candidates that pass run on an input of the
   real shape and memory layout; each is timed (``time_candidates``: one warm-up, then
   ``TIMING_REPEATS`` rounds taking turns, best of each). The fastest wins only if it takes at
   most ``SPEED_MARGIN`` of the baseline's time; otherwise the baseline (plain ``F.conv2d`` and
   friends) runs.

Both results are kept for the process and on disk, in ``~/.cache/fcn-ref/fastpath-<key>.json``,
one file per machine key (CPU model and flags, thread count, torch version; ``machine_key``),
with the layout hand-offs ``convert.trainpath`` records (``record_handoff``: the activations a
layer converted to the other memory layout, so that their producer is timed handing them on so).
``FCN_FASTPATH_CACHE`` relocates the folder; ``FCN_FASTPATH_CACHE=off`` keeps results in memory
only. A corrupt or unreadable file is ignored and rewritten.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import platform
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Callable, Mapping

import torch
from torch import Tensor

ACCURACY_FACTOR = 2.0  # a candidate's error may be at most this times the baseline's
ERROR_FLOOR = float(torch.finfo(torch.float32).eps)  # relative errors below this are rounding noise
SPEED_MARGIN = 0.9  # a candidate must take at most this fraction of the baseline's time
TIMING_REPEATS = 3
CACHE_ENV = "FCN_FASTPATH_CACHE"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "fcn-ref"

Run = Callable[[Tensor], Tensor]

_lock = threading.RLock()  # reentrant: timed runs look up hand-offs (``handoff``) inside ``choose``
RECORD_KINDS = ("accuracy", "timing", "handoff")
_memory: dict[str, dict[str, dict]] = {}  # cache file -> {kind: {...}} for each of RECORD_KINDS


@functools.cache
def cpu_model() -> str:
    """The CPU's model name and a digest of its feature flags (two Xeons of one name may differ);
    read once per process (every training step asks, through ``handoff``)."""
    name, flags = "", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not name:
                name = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = value.strip()
    except OSError:
        pass
    name = name or platform.processor() or platform.machine()
    return f"{name} [{hashlib.sha1(flags.encode()).hexdigest()[:8]}]" if flags else name


def machine_key() -> dict[str, object]:
    """What a measured choice depends on besides the layer: CPU, threads, torch."""
    return {"cpu": cpu_model(), "threads": torch.get_num_threads(), "torch": torch.__version__}


def cache_file(key: Mapping[str, object] | None = None) -> Path | None:
    """Where the choices for ``key`` (default: this machine) live, or None with the cache off."""
    setting = os.environ.get(CACHE_ENV, "")
    if setting.lower() in ("off", "0", "none", "false"):
        return None
    folder = Path(setting).expanduser() if setting else DEFAULT_CACHE_DIR
    digest = hashlib.sha1(json.dumps(key or machine_key(), sort_keys=True).encode()).hexdigest()[:16]
    return folder / f"fastpath-{digest}.json"


def _records(path: Path | None, key: dict[str, object]) -> dict[str, dict]:
    """The in-memory records for this cache file, read from disk the first time."""
    name = str(path) if path is not None else "memory:" + json.dumps(key, sort_keys=True)
    if name not in _memory:
        records: dict[str, dict] = {kind: {} for kind in RECORD_KINDS}
        if path is not None:
            try:
                stored = json.loads(path.read_text())
                if stored.get("machine") == key:
                    records = {kind: dict(stored.get(kind, {})) for kind in records}
            except (OSError, ValueError, AttributeError):
                pass
        _memory[name] = records
    return _memory[name]


def _save(path: Path | None, key: dict[str, object], records: dict[str, dict]) -> None:
    """Merge ``records`` into the file (other processes may have added layers) and replace it."""
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            stored = json.loads(path.read_text())
            if stored.get("machine") != key:
                stored = {}
        except (OSError, ValueError):
            stored = {}
        merged = {"machine": key}
        for kind in RECORD_KINDS:
            merged[kind] = {**stored.get(kind, {}), **records[kind]}
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=path.name, suffix=".tmp",
                                         delete=False) as out:
            json.dump(merged, out, indent=1, sort_keys=True)
        os.replace(out.name, path)
    except OSError:  # a read-only home: the choices still hold for this process
        pass


def relative_error(y: Tensor, reference: Tensor) -> float:
    """max|y - reference| / max|reference| (the project's parity measure), in float64."""
    scale = float(reference.abs().max()) if reference.numel() else 0.0
    diff = float((y.double() - reference).abs().max()) if reference.numel() else 0.0
    return diff / scale if scale > 0 else diff


def time_candidates(runs: Mapping[str, Callable[[], object]]) -> dict[str, float]:
    """Seconds one call of each run takes: one warm-up each (allocations, oneDNN primitives,
    cached transforms), then ``TIMING_REPEATS`` rounds calling each in turn, the best of each.
    Taking turns matters on a machine whose speed drifts (a shared VM: 20-30% within minutes):
    timed one after the other, the candidate measured in a slow minute loses. Tests replace this
    with a fake timer."""
    for run in runs.values():
        run()
    best = {name: math.inf for name in runs}
    for _ in range(TIMING_REPEATS):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def probe_input(shape: tuple[int, ...], seed_text: str, like: Tensor) -> Tensor:
    """A deterministic ``|N(0, 1)|`` tensor of ``shape`` in ``like``'s dtype, device and layout."""
    generator = torch.Generator().manual_seed(zlib.crc32(seed_text.encode()))
    x = torch.randn(shape, generator=generator).abs_().to(dtype=like.dtype, device=like.device)
    if like.dim() == 4 and like.is_contiguous(memory_format=torch.channels_last) and not like.is_contiguous():
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def choose(candidates: Mapping[str, Run], baseline: str, *, accuracy_key: str, accuracy_input: Tensor,
           reference: Run, timing_key: str, timing_input: Tensor, references: Mapping[str, Run] | None = None,
           margin: float = SPEED_MARGIN) -> str:
    """The candidate to run (a key of ``candidates``; ``baseline`` unless another passes the
    accuracy gate and is faster by the margin). See the module docstring for the two steps.

    ``reference`` computes the layer in float64 from ``accuracy_input``; the keys name the layer
    (geometry and a weight fingerprint for accuracy, geometry and input shape for timing).
    ``references`` compute the baseline's formula another way (the same kernel in another memory
    layout): they are never chosen or timed, but the gate allows the worst of their errors and the
    baseline's, per tensor. ``margin``: the most of the baseline's time the winner may take.
    """
    if len(candidates) == 1:
        return baseline
    references = dict(references or {})
    gated = {**references, **candidates}
    key = machine_key()
    path = cache_file(key)
    with _lock:
        records = _records(path, key)
        changed = False
        errors = records["accuracy"].setdefault(accuracy_key, {})
        if ACCURACY_FACTOR != math.inf and any(name not in errors for name in gated):
            with torch.no_grad():
                expected = reference(accuracy_input.double())
                for name, run in gated.items():
                    if name not in errors:
                        errors[name] = _errors(run(accuracy_input), expected)
            changed = True
        if ACCURACY_FACTOR == math.inf:  # the gate is off (tests forcing a path)
            allowed = list(candidates)
        else:
            bar = _worst([errors[name] for name in (baseline, *references)])
            allowed = [name for name in candidates if name == baseline or _within(errors[name], bar)]
        times = records["timing"].setdefault(timing_key, {})
        if any(name not in times for name in allowed):
            with torch.no_grad():  # all again: a time is only comparable with those of its rounds
                times.update(time_candidates({name: functools.partial(candidates[name], timing_input)
                                              for name in allowed}))
            changed = True
        if changed:
            _save(path, key, records)
    fastest = min(allowed, key=lambda name: (times[name], name != baseline))
    return fastest if times[fastest] <= margin * times[baseline] else baseline


def handoff(activation: str) -> str | None:
    """The memory layout that a layer given an activation described by ``activation`` (shape and
    layout, see ``convert.trainpath``) converted it to when it ran, or None if none did."""
    key = machine_key()
    with _lock:
        return _records(cache_file(key), key)["handoff"].get(activation)


def record_handoff(activation: str, layout: str) -> None:
    """Remember that a layer converted such an activation to ``layout``, for the layers that
    produce one (they are then timed handing it on in that layout). The first record stands:
    a producer that changes its layout because of it cannot flip it back."""
    key = machine_key()
    path = cache_file(key)
    with _lock:
        records = _records(path, key)
        if activation not in records["handoff"]:
            records["handoff"][activation] = layout
            _save(path, key, records)


def _errors(y: Tensor | tuple[Tensor, ...], reference: Tensor | tuple[Tensor, ...]) -> float | list[float]:
    """A run's error; a run returning several tensors (a training step: output and gradients) has
    one error per tensor."""
    if isinstance(reference, tuple):
        return [relative_error(a, b) for a, b in zip(y, reference, strict=True)]
    return relative_error(y, reference)


def _within(error: float | list[float], baseline: float | list[float]) -> bool:
    """The accuracy gate: every error at most ACCURACY_FACTOR times the baseline's (floored)."""
    if isinstance(baseline, list):
        return len(error) == len(baseline) and all(_within(e, b) for e, b in zip(error, baseline))
    return error <= ACCURACY_FACTOR * max(baseline, ERROR_FLOOR)


def _worst(errors: list) -> float | list[float]:
    """The largest of several errors (per tensor for lists)."""
    if isinstance(errors[0], list):
        return [max(column) for column in zip(*errors)]
    return max(errors)


def forget() -> None:
    """Drop the in-memory records (the disk file stays); the next ``choose`` rereads the file."""
    with _lock:
        _memory.clear()
