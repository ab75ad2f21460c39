"""Regenerate tests/fixtures/train/<case>/ by running real Caffe's SGDSolver (tools/caffe/python3 only).

    tools/caffe/python3 tools/caffe/make_train_fixtures.py [--only NAME ...] [--out DIR] [--seed S]

For each case in train_cases.py: draw the HDF5 inputs (seeded by the case name), write
train.prototxt and solver.prototxt, build caffe.SGDSolver with the case folder as the working
directory (Caffe resolves `train_net` and the HDF5 `source` against it), apply the recipe's
surgery (copy_from a parent case's final weights, bilinear deconvs), save init.caffemodel, then
`solver.step(1)` max_iter times and save final.caffemodel, the loss of every iteration and meta.json.

The loss an iteration reports is the mean over its iter_size forwards, accumulated in float32
(solver.cpp Step). pycaffe only exposes the last forward's loss blob, so a mirror net (the same
train.prototxt, TRAIN phase, parameters shared with the solver's net, its own HDF5Data cursor)
forwards the same rows in the solver's on_start callback, before the solver's own forwards of that
iteration. Each iteration checks the mirror's last loss against the solver net's loss blob, bit for
bit, so the recorded losses are the ones the solver computed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import zlib
from dataclasses import replace

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import caffe  # noqa: E402
import h5py  # noqa: E402
import numpy as np  # noqa: E402
from caffe.proto import caffe_pb2  # noqa: E402
from google.protobuf import text_format  # noqa: E402

import nets  # noqa: E402
import train_cases  # noqa: E402
from oracle import CAFFE_COMMIT, CAFFE_SOURCE, chosen_cases, solver_text  # noqa: E402

GENERATOR = "tools/caffe/make_train_fixtures.py"
FIXTURES = os.path.normpath(os.path.join(HERE, "..", "..", "tests", "fixtures", "train"))
OWN_FILES = ("solver.prototxt", "train.prototxt", "data.txt", "init.caffemodel", "final.caffemodel",
             "losses.npy", "meta.json")
CAFFE = f"BVLC {CAFFE_COMMIT} (brocolli-caffe 9.0.2)"


def seed_of(name: str, seed: int = 0) -> int:
    """A case's seed (data draw and Caffe's random_seed): crc32 of its name, shifted by ``seed``
    (0 writes the committed fixtures; other values draw fresh cases of the same recipes)."""
    return (zlib.crc32(name.encode()) + seed) % (2 ** 31)


def write_json(path: str, data: dict) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")


# ----------------------------------------------------------------------------- inputs

def new_h5(path: str) -> h5py.File:
    """HDF5 file without creation times (reruns are byte-identical)."""
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    return h5py.File(h5py.h5f.create(path.encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl))


# Inputs are gaussian rounded to multiples of this (exact in float32), so that gzip shrinks the files
# as it would shrink images; labels compress to almost nothing.
DATA_STEP = 0.25
H5_COMPRESSION = dict(compression="gzip", compression_opts=9, shuffle=True)


def write_data(case: train_cases.TrainCase, out: str, seed: int = 0) -> list[str]:
    """data_<i>.h5 per file (data float32 (N,C,H,W), label float32 (N,1,H,W) in [0,K) or 255, gzip)
    and data.txt listing them; returns the file names."""
    spec = case.data
    rng = np.random.RandomState(seed_of(case.name, seed))
    names = []
    for i, rows in enumerate(spec.rows):
        c, h, w = spec.shape
        data = (np.round(rng.standard_normal((rows, c, h, w)) * spec.scale / DATA_STEP) * DATA_STEP).astype(np.float32)
        b = spec.label_block
        label = rng.randint(0, spec.classes, (rows, 1, -(-h // b), -(-w // b)))
        label = label.repeat(b, axis=2).repeat(b, axis=3)[:, :, :h, :w]
        label[rng.random_sample(label.shape) < spec.void_share] = train_cases.VOID
        name = f"data_{i}.h5"
        with new_h5(os.path.join(out, name)) as f:
            f.create_dataset("data", data=data, track_times=False, **H5_COMPRESSION)
            f.create_dataset("label", data=label.astype(np.float32), track_times=False, **H5_COMPRESSION)
        names.append(name)
    with open(os.path.join(out, train_cases.SOURCE), "w") as f:
        f.write("".join(n + "\n" for n in names))
    return names


def data_order(case: train_cases.TrainCase, names: list[str], forwards: int, batch: int) -> list[list]:
    """(file, row) of every image HDF5Data hands out, in order: files in list order, rows in order,
    wrap-around after the last file (no shuffle)."""
    order, f, row = [], 0, 0
    for _ in range(forwards * batch):
        if row == case.data.rows[f]:
            f, row = (f + 1) % len(names), 0
        order.append([names[f], row])
        row += 1
    return order


# ----------------------------------------------------------------------------- solver

def solver_fields(case: train_cases.TrainCase, seed: int = 0) -> dict:
    fields = dict(train_net="train.prototxt", type="SGD", max_iter=train_cases.ITERS, display=1,
                  average_loss=1, snapshot=0, snapshot_after_train=False, random_seed=seed_of(case.name, seed),
                  solver_mode="CPU")
    fields.update(case.solver)
    return fields


def solver_param(case: train_cases.TrainCase) -> caffe_pb2.SolverParameter:
    return text_format.Merge(solver_text(solver_fields(case)), caffe_pb2.SolverParameter())


def loss_layers(proto: caffe_pb2.NetParameter) -> dict[str, float]:
    """Loss top -> loss_weight (1 for *Loss layers unless set)."""
    out = {}
    for layer in proto.layer:
        if layer.type.endswith("Loss"):
            out[layer.top[0]] = layer.loss_weight[0] if layer.loss_weight else 1.0
    return out


def net_loss(blobs, weights: dict[str, float]) -> np.float32:
    """What Net::Forward returns: the sum of loss_weight * loss over loss tops, in float32."""
    total = np.float32(0)
    for top, weight in weights.items():
        total = np.float32(total + np.float32(weight) * np.float32(blobs[top].data.reshape(-1)[0]))
    return total


def frozen_layers(proto: caffe_pb2.NetParameter, params) -> list[str]:
    return [l.name for l in proto.layer if l.name in params and l.param
            and all(p.lr_mult == 0 for p in l.param) and len(l.param) >= len(params[l.name])]


def set_bilinear(net, names: tuple[str, ...]) -> None:
    for name in names:
        blobs = net.params[name]
        shapes = [tuple(b.data.shape) for b in blobs]
        for blob, array in zip(blobs, nets.bilinear_diagonal(shapes, None)):
            blob.data[...] = array


def snapshot(params) -> dict[str, list[np.ndarray]]:
    return {name: [np.array(b.data, np.float32, copy=True) for b in blobs] for name, blobs in params.items()}


def run(case: train_cases.TrainCase, out: str) -> dict:
    """Train in Caffe with cwd = out; return what meta.json records besides the case's facts."""
    solver = caffe.get_solver("solver.prototxt")  # the file's type (SGD for these cases)
    net = solver.net
    if case.parent:
        net.copy_from(os.path.join("..", case.parent, "final.caffemodel"))
    set_bilinear(net, case.bilinear)
    net.save("init.caffemodel")
    init = snapshot(net.params)

    weights = loss_layers(case.net)
    iter_size = solver_param(case).iter_size
    mirror = caffe.Net("train.prototxt", caffe.TRAIN)
    mirror.share_with(net)
    forward_losses: list[list[float]] = []
    grad_norms: list[float] = []

    def on_start():
        losses = []
        for _ in range(iter_size):
            mirror.forward()
            losses.append(net_loss(mirror.blobs, weights))
        forward_losses.append(losses)

    def on_gradients_ready():
        sumsq = sum(float(np.dot(b.diff.ravel().astype(np.float64), b.diff.ravel())) for blobs in net.params.values()
                    for b in blobs)
        grad_norms.append(float(np.sqrt(sumsq)))

    solver.add_callback(on_start, on_gradients_ready)
    losses = []
    for it in range(train_cases.ITERS):
        solver.step(1)
        last = forward_losses[-1]
        solver_last = net_loss(net.blobs, weights)
        assert last[-1] == solver_last, (case.name, it, last[-1], solver_last)
        total = np.float32(0)
        for value in last:
            total = np.float32(total + value)
        mean = np.float32(total / np.float32(iter_size))
        if not np.isfinite(mean):
            raise SystemExit(f"{case.name}: loss {mean} at iteration {it}")
        losses.append(float(mean))
    assert solver.iter == train_cases.ITERS
    net.save("final.caffemodel")
    final = snapshot(net.params)
    np.save("losses.npy", np.array(losses, np.float64))

    frozen = frozen_layers(case.net, net.params)
    updates = {}
    for name, blobs in init.items():
        for i, (a, b) in enumerate(zip(blobs, final[name])):
            if name in frozen:
                assert np.array_equal(a, b), (case.name, name, "frozen param moved")
                continue
            step = float(np.linalg.norm((b.astype(np.float64) - a).ravel()))
            assert step > 0, (case.name, name, i, "learnable param did not move")
            updates[f"{name}/{i}"] = {"init_norm": float(np.linalg.norm(a.ravel().astype(np.float64))),
                                      "update_norm": step}
    spread = (max(losses) - min(losses)) / abs(np.mean(losses))
    assert spread > 1e-3, (case.name, "loss did not change", losses)
    return {"frozen": frozen, "forward_losses": [[float(v) for v in f] for f in forward_losses],
            "grad_norms": grad_norms, "updates": updates}


def generate(case: train_cases.TrainCase, root: str, seed: int = 0) -> dict:
    out = os.path.join(root, case.name)
    if os.path.isdir(out):
        for entry in os.listdir(out):
            if entry in OWN_FILES or entry.startswith("data_"):
                os.remove(os.path.join(out, entry))
    os.makedirs(out, exist_ok=True)
    names = write_data(case, out, seed)
    with open(os.path.join(out, "train.prototxt"), "w") as f:
        f.write(str(case.net))
    param = solver_param(case)
    with open(os.path.join(out, "solver.prototxt"), "w") as f:
        f.write(solver_text(solver_fields(case, seed)))
    batch = next(l.hdf5_data_param.batch_size for l in case.net.layer if l.type == "HDF5Data")

    cwd = os.getcwd()
    os.chdir(out)
    try:
        result = run(case, out)
    finally:
        os.chdir(cwd)
    meta = {
        "iters": train_cases.ITERS,
        "iter_size": param.iter_size,
        "batch_size": batch,
        "description": case.description,
        "frozen": result["frozen"],
        "caffe": CAFFE,
        "caffe_source": CAFFE_SOURCE,
        "generator": GENERATOR,
        "parent": case.parent,
        "bilinear_surgery": list(case.bilinear),
        "loss_weights": loss_layers(case.net),
        "losses": "losses.npy[i] = the loss Caffe's solver computed at iteration i (before its update): "
                  "float32 mean over the iter_size forwards of sum(loss_weight * loss top), stored as float64; "
                  "exact (the mirror net's last forward equals the solver net's loss blob bit for bit)",
        "forward_losses": result["forward_losses"],
        "data_files": names,
        "data_order": data_order(case, names, train_cases.ITERS * param.iter_size, batch),
        "grad_norms": result["grad_norms"],
        "grad_norms_note": "L2 norm over all parameter diffs when the gradients are ready (summed over the "
                           "iter_size forwards, before clipping and normalization), computed in float64 "
                           "from Caffe's diffs: for reading, not for exact comparison",
        "updates": result["updates"],
    }
    if seed:
        meta["seed"] = seed
    if param.clip_gradients > 0:
        meta["clipped_iterations"] = sum(n > param.clip_gradients for n in result["grad_norms"])
        if not 0 < meta["clipped_iterations"] < train_cases.ITERS and seed:
            # a fresh draw whose norms all fall on one side: clip at their median instead
            median = float(f"{np.median(result['grad_norms']):.3g}")
            return generate(replace(case, solver=dict(case.solver, clip_gradients=median),
                                    description=f"{case.description} This draw clips at {median}, "
                                                "its median norm."), root, seed)
        threshold = param.clip_gradients
        assert 0 < meta["clipped_iterations"] < train_cases.ITERS, "want clipped and unclipped iterations"
        assert all(abs(n - threshold) > 1e-3 * threshold for n in result["grad_norms"]), "norm at the threshold"
    write_json(os.path.join(out, "meta.json"), meta)
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="case names to regenerate (default: all)")
    parser.add_argument("--out", default=FIXTURES)
    parser.add_argument("--seed", type=int, default=0,
                        help="shift every case's seed (0: the committed fixtures; others: fresh draws, e.g. into --out /tmp/x)")
    args = parser.parse_args(argv)
    caffe.set_mode_cpu()
    cases = chosen_cases(parser, train_cases.all_cases(), args.only)
    os.makedirs(args.out, exist_ok=True)
    args.out = os.path.abspath(args.out)
    for case in cases:
        meta = generate(case, args.out, args.seed)
        print_summary(case.name, args.out, meta)
    return 0


def print_summary(name: str, root: str, meta: dict) -> None:
    """One line a case: its first and last loss and how far its blobs moved (a no-op shows here)."""
    losses = np.load(os.path.join(root, name, "losses.npy"))
    ratios = [u["update_norm"] / u["init_norm"] for u in meta["updates"].values() if u["init_norm"] > 0]
    print(f"{name}: loss {losses[0]:.6g} -> {losses[-1]:.6g}, update/init min {min(ratios):.3g} "
          f"max {max(ratios):.3g}, frozen {meta['frozen']}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
