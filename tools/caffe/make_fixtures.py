"""Regenerate tests/fixtures/<case>/ with real Caffe (run under tools/caffe/python3).

    tools/caffe/python3 tools/caffe/make_fixtures.py [--only NAME ...] [--out DIR]

For each case (nets.py, micro_nets.py): write net.prototxt, fill the weights (seeded by the case
name, so reruns give the same files), let Caffe save net.caffemodel (and net.caffemodel.h5 or the
V1 files where asked), reload the files from disk into a fresh Caffe net, forward random inputs and
store every blob in reference.h5. Optional formats are checked against the reference before they
are kept: Caffe must load them and give the same blobs.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import caffe  # noqa: E402
import h5py  # noqa: E402
import numpy as np  # noqa: E402
from caffe.proto import caffe_pb2  # noqa: E402

import micro_nets  # noqa: E402
import nets  # noqa: E402
from legacy_v1 import V1Net  # noqa: E402
from oracle import CAFFE_COMMIT, CAFFE_SOURCE, chosen_cases, forward, write_arrays  # noqa: E402

GENERATOR_VERSION = "1"
# What this generator writes into a case folder (it replaces these and leaves other files alone).
OWN_FILES = ("net.prototxt", "net.caffemodel", "net.caffemodel.h5", "v1.prototxt", "v1.caffemodel",
             "reference.h5", "case.json", "params.json", "params-v1.json")
# Uncropped upsampling outputs are the largest blobs and their compared part reappears in the Crop
# top, so above this size a blob consumed only by Crop layers is left out of reference.h5.
CROP_ONLY_OMIT_ABOVE = 100_000
FIXTURES = os.path.normpath(os.path.join(HERE, "..", "..", "tests", "fixtures"))


def all_cases() -> list[nets.Case]:
    return [make() for make in nets.ZOO] + micro_nets.all_cases()


def seed_of(name: str) -> int:
    return zlib.crc32(name.encode())


def is_frozen_deconv(layer: caffe_pb2.LayerParameter) -> bool:
    """Fixed upsampling in the FCN nets: Deconvolution with lr_mult 0 (bilinear, surgery.interp)."""
    return layer.type == "Deconvolution" and len(layer.param) > 0 and layer.param[0].lr_mult == 0


def fill_weights(net, case: nets.Case, rng: np.random.RandomState) -> None:
    protos = {layer.name: layer for layer in case.net.layer}
    for name, layer in zip(net._layer_names, net.layers):
        if len(layer.blobs) == 0:
            continue
        proto = protos[name]
        shapes = [tuple(b.data.shape) for b in layer.blobs]
        if name in case.init:
            arrays = case.init[name](shapes, rng)
        elif is_frozen_deconv(proto):
            arrays = nets.bilinear_diagonal(shapes, rng)
        else:
            arrays = nets.random_init(proto.type, shapes, proto, rng)
        for blob, array in zip(layer.blobs, arrays):
            assert blob.data.shape == array.shape, (name, blob.data.shape, array.shape)
            blob.data[...] = array


def make_inputs(case: nets.Case, rng: np.random.RandomState) -> dict[str, np.ndarray]:
    inputs = {}
    for layer in case.net.layer:
        if layer.type == "Input":
            for top, shape in zip(layer.top, layer.input_param.shape):
                if top in case.input_fill:  # indices, selectors, sequence markers
                    inputs[top] = np.asarray(case.input_fill[top]([tuple(shape.dim)], rng)[0], np.float32)
                    continue
                scale = case.input_scale.get(top, 1.0)
                inputs[top] = (rng.standard_normal(tuple(shape.dim)) * scale).astype(np.float32)
    return inputs


def declared(case: nets.Case) -> set[str]:
    return {top for layer in case.net.layer for top in layer.top}


def same_blobs(name: str, ref: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> None:
    """Raise unless Caffe produced bit-identical blobs from an alternative file format."""
    assert ref.keys() == other.keys(), (name, sorted(set(ref) ^ set(other)))
    for blob in ref:
        if not np.array_equal(ref[blob], other[blob]):
            diff = np.abs(ref[blob] - other[blob]).max()
            raise AssertionError(f"{name}: blob {blob} differs by {diff}")


def check_reference(case: nets.Case, blobs: dict[str, np.ndarray], outputs: list[str]) -> None:
    missing = declared(case) - set(blobs)
    assert not missing, (case.name, missing)
    for blob, array in blobs.items():
        assert np.isfinite(array).all(), (case.name, blob, "non-finite")
    for out in outputs:
        assert np.abs(blobs[out]).max() > 0, (case.name, out, "all zero")
        assert blobs[out].size == 1 or np.ptp(blobs[out]) > 0, (case.name, out, "constant")


def check_legacy_cvpr(path: str, weights: dict[str, list[np.ndarray]], prototxt: str, expected_crops: int) -> None:
    """The hand-spliced CROP layers must parse back, and BVLC Caffe must refuse the V1 files."""
    parsed = caffe_pb2.NetParameter()
    with open(path, "rb") as f:
        parsed.ParseFromString(f.read())
    crops = 0
    for layer in parsed.layers:
        if layer.name == "crop":
            crops += 1
            assert not layer.HasField("type")  # 40 is unknown to master's enum: kept as unknown field
        got = [np.array(b.data, np.float32) for b in layer.blobs]
        want = [w.ravel() for w in weights.get(layer.name, [])]
        assert len(got) == len(want) and all(np.array_equal(g, w) for g, w in zip(got, want)), layer.name
    assert crops == expected_crops, (crops, expected_crops)
    probe = "import caffe, sys; caffe.Net(sys.argv[1], caffe.TEST)"
    run = subprocess.run([sys.executable, "-c", probe, prototxt], capture_output=True, text=True)
    assert run.returncode != 0, "BVLC Caffe unexpectedly loaded the CVPR V1 prototxt"


def h5_arrays(path: str) -> dict[str, np.ndarray]:
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) else None)
    return arrays


def keep_if_same(path: str, old: bytes | None) -> None:
    """Caffe's HDF5 writer stamps creation times; keep the old file when the data are unchanged
    so that a rerun leaves every fixture byte-identical."""
    if old is None:
        return
    tmp = path + ".old"
    with open(tmp, "wb") as f:
        f.write(old)
    before, after = h5_arrays(tmp), h5_arrays(path)
    same = before.keys() == after.keys() and all(
        before[k].dtype == after[k].dtype and np.array_equal(before[k], after[k]) for k in before)
    if same:
        os.replace(tmp, path)
    else:
        os.remove(tmp)


def crop_only_blobs(case: nets.Case) -> set[str]:
    """Blobs whose every consumer is a Crop that crops them (bottom 0)."""
    consumers: dict[str, list[tuple[str, int]]] = {}
    for layer in case.net.layer:
        for i, bottom in enumerate(layer.bottom):
            consumers.setdefault(bottom, []).append((layer.type, i))
    return {blob for blob, uses in consumers.items() if all(t == "Crop" and i == 0 for t, i in uses)}


def large_blobs(case: nets.Case, blobs: dict[str, np.ndarray], outputs: list[str]) -> set[str]:
    """Blobs over the case's max_blob values (reduced cases keep their head only) and the inputs'
    copies (they are in inputs/); never an output, so the end-to-end comparison is always there."""
    if case.max_blob is None:
        return set()
    inputs = {top for layer in case.net.layer if layer.type == "Input" for top in layer.top}
    return inputs | {b for b, array in blobs.items() if array.size > case.max_blob and b not in outputs}


def open_reference(path: str, compact: bool) -> h5py.File:
    """reference.h5 for writing. `compact`: the HDF5 1.10 format (Caffe's h5py has 1.10), whose
    chunk index halves a file of a few dozen small datasets; its object headers would record
    modification times, so time tracking is off to keep reruns byte-identical."""
    if not compact:
        return h5py.File(path, "w")
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_V110, h5py.h5f.LIBVER_V110)
    return h5py.File(h5py.h5f.create(path.encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl))


def new_group(f: h5py.File, name: str, compact: bool) -> h5py.Group:
    if not compact:
        return f.create_group(name)
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    return h5py.Group(h5py.h5g.create(f.id, name.encode(), gcpl=gcpl))


def params_digest(params) -> dict:
    """Shape and sha256 of every weight blob as Caffe holds it after loading: the readers' reference."""
    return {name: [{"shape": list(b.data.shape),
                    "sha256": hashlib.sha256(np.ascontiguousarray(b.data, np.float32).tobytes()).hexdigest()}
                   for b in blobs]
            for name, blobs in params.items()}


def write_json(path: str, data: dict) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")


def generate(case: nets.Case, root: str) -> dict:
    out = os.path.join(root, case.name)
    old_h5 = os.path.join(out, "net.caffemodel.h5")
    old_h5 = open(old_h5, "rb").read() if os.path.exists(old_h5) else None
    for name in OWN_FILES:
        if os.path.exists(os.path.join(out, name)):
            os.remove(os.path.join(out, name))
    os.makedirs(out, exist_ok=True)
    path = lambda f: os.path.join(out, f)  # noqa: E731
    with open(path("net.prototxt"), "w") as f:
        f.write(str(case.net))

    seed = seed_of(case.name)
    builder = caffe.Net(path("net.prototxt"), caffe.TEST)
    fill_weights(builder, case, np.random.RandomState(seed))
    builder.save(path("net.caffemodel"))
    if case.hdf5:
        builder.save_hdf5(path("net.caffemodel.h5"))
        keep_if_same(path("net.caffemodel.h5"), old_h5)
    del builder

    # The reference comes from a fresh net that read the saved files back, like a user's would.
    net = caffe.Net(path("net.prototxt"), caffe.TEST, weights=path("net.caffemodel"))
    inputs = make_inputs(case, np.random.RandomState(seed + 1))
    keep = declared(case)
    blobs = forward(net, inputs, keep)
    outputs = list(net.outputs)
    check_reference(case, blobs, outputs)
    weights = {name: [np.array(b.data, np.float32) for b in params] for name, params in net.params.items()}
    write_json(path("params.json"), params_digest(net.params))
    del net

    if case.hdf5:
        h5net = caffe.Net(path("net.prototxt"), caffe.TEST, weights=path("net.caffemodel.h5"))
        same_blobs(case.name + " (hdf5)", blobs, forward(h5net, inputs, keep))
        del h5net
    if case.v1:
        v1 = V1Net(case.net, weights, allow_future=case.legacy_cvpr)
        with open(path("v1.prototxt"), "w") as f:
            f.write(v1.prototxt())
        with open(path("v1.caffemodel"), "wb") as f:
            f.write(v1.caffemodel())
        if case.legacy_cvpr:
            crops = sum(layer.type == "Crop" for layer in case.net.layer)
            check_legacy_cvpr(path("v1.caffemodel"), weights, path("v1.prototxt"), crops)
        else:
            v1net = caffe.Net(path("v1.prototxt"), caffe.TEST, weights=path("v1.caffemodel"))
            same_blobs(case.name + " (v1)", blobs, forward(v1net, inputs, keep))
            write_json(path("params-v1.json"), params_digest(v1net.params))
            del v1net

    compact = case.max_blob is not None  # the older cases keep their bytes
    with open_reference(path("reference.h5"), compact) as f:
        f.attrs["caffe_commit"] = CAFFE_COMMIT
        f.attrs["caffe_source"] = CAFFE_SOURCE
        f.attrs["generator"] = f"tools/caffe/make_fixtures.py v{GENERATOR_VERSION}"
        f.attrs["seed"] = seed
        write_arrays(new_group(f, "inputs", compact), inputs, compress=True)
        omitted = sorted(b for b in crop_only_blobs(case) if b in blobs and blobs[b].size > CROP_ONLY_OMIT_ABOVE)
        f.attrs["omitted_crop_only_blobs"] = ",".join(omitted)
        large = sorted(large_blobs(case, blobs, outputs) - set(omitted))
        if case.max_blob is not None:  # attribute only where the case asks, so old files stay identical
            f.attrs["max_blob"] = case.max_blob
            f.attrs["omitted_large_blobs"] = ",".join(large)
        omitted = set(omitted) | set(large)
        write_arrays(new_group(f, "blobs", compact), {k: v for k, v in blobs.items() if k not in omitted},
                     compress=True)
    meta = {"inputs": list(inputs), "outputs": outputs, "architecture": case.architecture,
            "crop_offsets": case.crop_offsets, "notes": case.notes}
    if case.input_fill:  # indices, selectors, positives: other tools must not redraw them at random
        meta["fixed_inputs"] = sorted(case.input_fill)
    with open(path("case.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="case names to regenerate (default: all)")
    parser.add_argument("--out", default=FIXTURES)
    args = parser.parse_args(argv)
    caffe.set_mode_cpu()
    cases = chosen_cases(parser, all_cases(), args.only)
    names = [c.name for c in cases]
    if not args.only:  # a full run also drops fixtures of cases that no longer exist
        for entry in os.listdir(args.out) if os.path.isdir(args.out) else []:
            if entry not in names and os.path.exists(os.path.join(args.out, entry, "case.json")):
                shutil.rmtree(os.path.join(args.out, entry))
    for case in cases:
        meta = generate(case, args.out)
        print(f"{case.name}: outputs {meta['outputs']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
