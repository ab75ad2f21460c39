"""Fuzz cases: (seed, index) -> a mutated file, run through the CLI or the loaders, and a verdict.

A case fails when anything but ``CaffeFormatError`` escapes, when an error message is not one line
naming the file, when a refused conversion leaves a file behind or touches its input, when a file
``python -m convert`` wrote does not load back with ``convert.load`` and ``fcn_ref.load``, or when a
damaged ``.pth`` (not re-sealed with a fresh digest) loads with content different from the original.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import traceback
from pathlib import Path

import numpy as np
import torch

from mutations import (INTERESTING, hdf5_mutation, protobuf_mutation, prototxt_mutation, raw_mutation)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"

# (kind, model file, prototxt file), relative to the fixtures; weights of the micro-nets keep cases fast.
MICRO = ["layer-conv-group", "layer-deconv-stride", "layer-pool-max-k3s2p1", "layer-crop-axis2", "layer-reshape",
         "layer-scale-axis2", "layer-eltwise-sum-coeff", "layer-batchnorm", "layer-ip-transpose", "layer-lrn-across",
         "layer-concat", "layer-conv-dilation", "layer-deconv-bilinear", "layer-softmax", "layer-im2col", "layer-spp",
         "layer-tile", "layer-embed", "layer-lstm", "layer-rnn-static", "layer-reduction", "layer-argmax",
         "layer-parameter", "layer-filter", "layer-mvn", "layer-dummy-data"]
SEEDS = (
    [("binary", f"{case}/net.caffemodel", None, 6) for case in MICRO]
    + [("binary", "voc-fcn8s/net.caffemodel", None, 4), ("binary", "cvpr-fcn8s/v1.caffemodel", None, 3),
       ("binary", "voc-fcn-alexnet/net.caffemodel", None, 2)]
    + [("prototxt", f"{case}/net.caffemodel", f"{case}/net.prototxt", 3) for case in MICRO]
    + [("prototxt", "voc-fcn8s/net.caffemodel", "voc-fcn8s/net.prototxt", 3),
       ("prototxt", "cvpr-fcn8s/v1.caffemodel", "cvpr-fcn8s/v1.prototxt", 2)]
    + [("hdf5", "voc-fcn-alexnet/net.caffemodel.h5", "voc-fcn-alexnet/net.prototxt", 4)]
    + [("pth", f"{case}/net.caffemodel", None, 3) for case in MICRO[:6]]
    + [("pth", "voc-fcn8s/net.caffemodel", None, 5), ("pth", "cvpr-fcn8s/v1.caffemodel", None, 2)]
)
WEIGHTS = np.array([s[3] for s in SEEDS], dtype=np.float64) / sum(s[3] for s in SEEDS)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cli(argv: list[str]) -> tuple[int, str, str]:
    """``python -m convert`` in-process: exit code, stderr; a foreign exception is returned as text."""
    from convert.cli import main

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    except BaseException:
        return -1, err.getvalue(), traceback.format_exc(limit=-4)
    return code, err.getvalue(), ""


def _message_ok(text: str, names: list[Path]) -> str | None:
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        return f"message has {len(lines)} lines: {text[:300]!r}"
    if "Traceback" in text:
        return "traceback printed"
    if not any(str(p) in lines[0] for p in names):
        return f"message names no file: {lines[0][:200]!r}"
    return None


def _load_both(path: Path):
    """(convert.load module, fcn_ref.load model) or the foreign exception's text."""
    import convert
    import fcn_ref

    return convert.load(path), fcn_ref.load(path)


def _fingerprint(model) -> tuple:
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return repr(model), getattr(model, "meta", None), state


def _same(a: tuple, b: tuple) -> bool:
    if a[0] != b[0] or a[1] != b[1] or sorted(a[2]) != sorted(b[2]):
        return False
    return all(a[2][k].shape == b[2][k].shape and torch.equal(a[2][k], b[2][k]) for k in a[2])


def run_convert_case(model: Path | None, prototxt: Path | None, work: Path) -> tuple[str | None, str]:
    """Convert through the CLI; (what went wrong or None, "converted" / "refused")."""
    failure = _judge_conversion(model, prototxt, work)
    return failure, "converted" if (work / "out.pth").exists() else "refused"


def _judge_conversion(model: Path | None, prototxt: Path | None, work: Path) -> str | None:
    out = work / "out.pth"
    inputs = [p for p in (model, prototxt) if p is not None]
    before = {p: _sha(p) for p in inputs}
    argv = ([str(model)] if model else []) + (["--prototxt", str(prototxt)] if prototxt else []) + ["-o", str(out)]
    code, err, foreign = _cli(argv)
    if foreign:
        return f"foreign exception: {foreign.strip().splitlines()[-1]}\n{foreign}"
    if any(_sha(p) != h for p, h in before.items()):
        return "input file changed"
    leftovers = [p.name for p in work.iterdir() if p.name.startswith(".out.pth")]
    if leftovers:
        return f"temporary file left: {leftovers}"
    if code == 0:
        if not out.exists():
            return "exit 0 but no output"
        try:
            _load_both(out)
        except Exception as e:  # noqa: BLE001 - any failure to load back is the finding
            return f"converted file does not load back: {type(e).__name__}: {str(e)[:300]}"
        return None
    if code != 1:
        return f"exit code {code}"
    if out.exists():
        return "refused but an output file exists"
    return _message_ok(err, inputs + [out])


def _mutate_payload(payload: dict, rng: np.random.Generator) -> tuple[dict, str]:
    """Well-formed .pth content that is wrong in one way."""
    payload = dict(payload)
    state = dict(payload["state_dict"])
    payload["state_dict"] = state
    keys = sorted(state)
    choice = int(rng.integers(12))
    key = keys[int(rng.integers(len(keys)))] if keys else None
    if choice == 0:
        drop = sorted(payload)[int(rng.integers(len(payload)))]
        del payload[drop]
        return payload, f"drop entry {drop}"
    if choice == 1 and key:
        t = state[key].clone()
        t.view(-1)[int(rng.integers(t.numel()))] += 1.0
        state[key] = t
        return payload, f"one value of {key} changed"
    if choice == 2 and key:
        del state[key]
        return payload, f"tensor {key} dropped"
    if choice == 3 and key:
        state[key] = state[key].to([torch.float64, torch.int32, torch.float16][int(rng.integers(3))])
        return payload, f"dtype of {key}"
    if choice == 4 and key:
        state[key] = state[key].reshape(-1)
        return payload, f"{key} flattened"
    if choice == 5:
        text, label = prototxt_mutation(payload["net"].encode(), rng)
        payload["net"] = text.decode("utf-8", errors="replace")
        return payload, f"net text: {label}"
    if choice == 6 and isinstance(payload.get("architecture"), dict):
        arch = {**payload["architecture"], "kwargs": dict(payload["architecture"].get("kwargs", {}))}
        kwargs = arch["kwargs"]
        name = sorted(kwargs)[int(rng.integers(len(kwargs)))] if kwargs else "num_classes"
        value = [INTERESTING[int(rng.integers(len(INTERESTING)))], -1, "x", None, [0], [2**40] * 5, 1.5][
            int(rng.integers(7))]
        kwargs[name] = value
        payload["architecture"] = arch
        return payload, f"architecture {name} -> {str(value)[:30]}"
    if choice == 7:
        payload["architecture"] = [{"name": "fcn8s"}, "fcn8s", {"name": "nosuch", "kwargs": {}},
                                   {"name": "fcn8s"}, {"name": "fcn8s", "kwargs": []}][int(rng.integers(5))]
        return payload, f"architecture -> {payload['architecture']}"
    if choice == 8:
        entry = ["source", "name", "net", "format", "state_dict"][int(rng.integers(5))]
        payload[entry] = [None, 3, b"bytes", ["list"], {"a": 1}][int(rng.integers(5))]
        return payload, f"{entry} of the wrong type"
    if choice == 9 and key:
        state[key.replace(".", "#", 1) if rng.random() < 0.5 else "ghost.weight"] = state[key]
        return payload, "extra tensor"
    if choice == 10 and isinstance(payload.get("digest"), dict):
        digest = dict(payload["digest"])
        digest["description"] = "0" * 64
        payload["digest"] = digest
        return payload, "digest edited"
    payload["extra"] = 1
    return payload, "extra entry"


def run_pth_case(pth: Path, original: tuple, rng: np.random.Generator, work: Path) -> tuple[str | None, str, str]:
    """Mutate a converted file (bytes, or content re-saved with or without a fresh digest) and load it."""
    from convert.checkpoint import sealed
    from convert.errors import CaffeFormatError

    target = work / "damaged.pth"
    resealed = False
    if rng.random() < 0.5:
        data, label = raw_mutation(pth.read_bytes(), rng)
        target.write_bytes(data)
    else:
        payload = torch.load(pth, weights_only=True)
        payload, label = _mutate_payload(payload, rng)
        if rng.random() < 0.4 and {"net", "name", "architecture", "source", "state_dict"} <= set(payload):
            try:
                payload = sealed({k: v for k, v in payload.items() if k not in ("digest", "format")})
                resealed = True
                label += " (re-sealed)"
            except Exception:  # noqa: BLE001 - content too odd to seal; then it is simply damaged
                pass
        torch.save(payload, target)
    outcome = "refused"
    for loader in ("convert", "fcn_ref"):
        try:
            import convert
            import fcn_ref

            model = convert.load(target) if loader == "convert" else fcn_ref.load(target)
        except CaffeFormatError as e:
            problem = _message_ok(str(e), [target])
            if problem:
                return f"{loader}.load: {problem}", label, outcome
            continue
        except Exception:  # noqa: BLE001
            return f"{loader}.load foreign exception: {traceback.format_exc(limit=-4)}", label, outcome
        if not _same(_fingerprint(model), original[loader]):
            if not resealed:
                return f"{loader}.load loaded a damaged file silently", label, outcome
            outcome = "loaded changed (re-sealed)"
        elif outcome == "refused":
            outcome = "loaded unchanged"
    return None, label, outcome


_ORIGINALS: dict[str, tuple[Path, dict]] = {}


def _original_pth(model: str, cache: Path) -> tuple[Path, dict]:
    """The unmutated conversion of a seed model and what both loaders make of it (once per worker)."""
    if model not in _ORIGINALS:
        import convert
        import fcn_ref

        out = cache / (model.replace("/", "_") + ".pth")
        convert.convert(FIXTURES / model, None, out, force=True)
        _ORIGINALS[model] = (out, {"convert": _fingerprint(convert.load(out)),
                                   "fcn_ref": _fingerprint(fcn_ref.load(out))})
    return _ORIGINALS[model]


def run_case(seed: int, index: int, scratch: Path) -> dict:
    """Build and run case ``index`` of the run seeded ``seed``; the verdict as a dict."""
    rng = np.random.default_rng([seed, index])
    kind, model, prototxt, _ = SEEDS[int(rng.choice(len(SEEDS), p=WEIGHTS))]
    work = scratch / f"case{index}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        if kind == "pth":
            pth, originals = _original_pth(model, scratch)
            failure, label, outcome = run_pth_case(pth, originals, rng, work)
        elif kind == "binary":
            data = (FIXTURES / model).read_bytes()
            data, label = (protobuf_mutation if rng.random() < 0.5 else raw_mutation)(data, rng)
            target = work / "model.caffemodel"
            target.write_bytes(data)
            failure, outcome = run_convert_case(target, None, work)
        elif kind == "hdf5":
            data, label = hdf5_mutation((FIXTURES / model).read_bytes(), rng)
            target = work / "model.caffemodel.h5"
            target.write_bytes(data)
            shutil.copy(FIXTURES / prototxt, work / "net.prototxt")
            failure, outcome = run_convert_case(target, work / "net.prototxt", work)
        else:  # a prototxt mutated, with its (intact) weights
            text, label = prototxt_mutation((FIXTURES / prototxt).read_bytes(), rng)
            (work / "net.prototxt").write_bytes(text)
            shutil.copy(FIXTURES / model, work / "model.caffemodel")
            failure, outcome = run_convert_case(work / "model.caffemodel", work / "net.prototxt", work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"index": index, "kind": kind, "seed_file": model if kind != "prototxt" else prototxt,
            "mutation": label, "outcome": outcome, "failure": failure}


if __name__ == "__main__":  # pragma: no cover - a manual entry for one case
    import sys
    import tempfile

    print(run_case(int(sys.argv[1]), int(sys.argv[2]), Path(tempfile.mkdtemp())))
    os._exit(0)
