"""Write the public-net suite with real Caffe (run under tools/caffe/python3).

    tools/caffe/python3 tools/caffe/make_public_nets.py [--variant small|full] [--only NAME ...] [--out DIR]

For each net of public_nets.NETS: write net.prototxt (deploy size), let Caffe create the net, fill
it with seeded random weights and bring every activation into range from the data itself (layer by
layer in Caffe: each BatchNorm gets the mean and variance its input actually has, each learned
Convolution / InnerProduct / Deconvolution is rescaled so that its output has unit standard
deviation, which also scales the logits before every Softmax), let Caffe save net.caffemodel, then
load that file into a fresh Caffe net and run it on a new input at the deploy size and at an odd
size. `small` (the default) writes tests/fixtures/public-nets/<net>/: the values of every blob at
seeded positions (public_nets/sampling.py) in deploy.npy and odd.npy, described by meta.json.
`full` writes every value of every blob into blobs-deploy.h5 / blobs-odd.h5 (the oracle tier).
Reruns are byte-identical (one BLAS thread, statistics and scales rounded to 4 digits).
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):  # BLAS sums in a fixed order: same bits every run
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import urllib.parse  # noqa: E402
import zlib  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import caffe  # noqa: E402
import h5py  # noqa: E402
import numpy as np  # noqa: E402

import public_nets  # noqa: E402
from nets import bilinear_diagonal  # noqa: E402
from oracle import CAFFE_COMMIT, CAFFE_SOURCE, declared_blobs  # noqa: E402
from public_nets import sampling  # noqa: E402

GENERATOR_VERSION = "1"
FIXTURES = os.path.normpath(os.path.join(HERE, "..", "..", "tests", "fixtures", "public-nets"))
LEARNED = ("Convolution", "InnerProduct", "Deconvolution")
TARGET_STD = 1.0
SIGNIFICANT = 4


def rounded(values: np.ndarray) -> np.ndarray:
    """Calibration numbers to a few significant digits, so that a last-bit difference in a BLAS
    sum cannot change a weight."""
    return np.array([float(f"{v:.{SIGNIFICANT}g}") for v in np.ravel(values)]).reshape(np.shape(values))


def frozen_deconvs(spec_layers: list[dict]) -> set[str]:
    """Fixed upsampling layers (Deconvolution with lr_mult 0): bilinear, as their nets were trained."""
    return {layer["name"] for layer in spec_layers
            if layer["type"] == "Deconvolution" and layer.get("param") and layer["param"][0]["lr_mult"] == 0}


def fill_random(net, frozen: set[str], rng: np.random.RandomState) -> None:
    for name, layer in zip(net._layer_names, net.layers):
        blobs = layer.blobs
        if not len(blobs):
            continue
        shapes = [tuple(b.data.shape) for b in blobs]
        if name in frozen:
            arrays = bilinear_diagonal(shapes, rng)
        elif layer.type in LEARNED:
            fan_in = int(np.prod(shapes[0][1:]))
            arrays = [rng.normal(0, np.sqrt(2.0 / fan_in), shapes[0])] + [rng.normal(0, 0.1, s) for s in shapes[1:]]
        elif layer.type == "BatchNorm":  # statistics come from the data (calibrate)
            arrays = [np.zeros(shapes[0]), np.ones(shapes[1]), np.ones(shapes[2])]
        elif layer.type == "Scale":
            arrays = [rng.uniform(0.5, 1.5, shapes[0])] + [rng.normal(0, 0.2, s) for s in shapes[1:]]
        else:
            raise ValueError(f"{name}: no initializer for {layer.type} blobs")
        for blob, array in zip(blobs, arrays):
            blob.data[...] = array


def calibrate(net, frozen: set[str], inputs: dict[str, np.ndarray]) -> None:
    """One forward pass, layer by layer, fixing each layer's numbers from what reaches it."""
    for name, array in inputs.items():
        net.blobs[name].reshape(*array.shape)
        net.blobs[name].data[...] = array
    net.reshape()
    for i, (name, layer) in enumerate(zip(net._layer_names, net.layers)):
        if layer.type == "BatchNorm":
            bottom = net._blobs[net._bottom_ids(i)[0]].data
            axes = (0,) + tuple(range(2, bottom.ndim))
            layer.blobs[0].data[...] = rounded(bottom.mean(axes, dtype=np.float64))
            layer.blobs[1].data[...] = rounded(bottom.var(axes, dtype=np.float64))
            layer.blobs[2].data[...] = 1.0
        net._forward(i, i)
        if layer.type in LEARNED and name not in frozen:
            std = float(net._blobs[net._top_ids(i)[0]].data.std(dtype=np.float64))
            if std > 0:
                factor = float(rounded(TARGET_STD / std))
                for blob in layer.blobs:
                    blob.data[...] *= factor
                net._forward(i, i)


def run(net, inputs: dict[str, np.ndarray]) -> None:
    for name, array in inputs.items():
        net.blobs[name].reshape(*array.shape)
        net.blobs[name].data[...] = array
    net.forward()


def sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, np.float32).tobytes()).hexdigest()


def record_samples(net, keep: set[str], outputs: list[str], path: str) -> dict:
    """Caffe's values at the sampled positions of every blob, packed into one .npy."""
    table, values, positions = [], [], []
    for name, blob in net.blobs.items():
        if name not in keep:
            continue
        data = blob.data
        assert np.isfinite(data).all(), (name, "non-finite")
        index = sampling.positions(name, data.size, output=name in outputs)
        values.append(np.ascontiguousarray(data).reshape(-1)[index].astype(np.float32))
        positions.append(index)
        table.append({"name": name, "shape": list(data.shape), "absmax": float(np.abs(data).max()),
                      "count": int(index.size)})
    np.save(path, np.concatenate(values))
    return {"blobs": table, "positions_sha256": sampling.digest(positions)}


def record_all(net, keep: set[str], path: str) -> dict:
    """Every value of every blob, one dataset each (names quoted: Caffe names may contain '/')."""
    table = []
    with h5py.File(path, "w") as f:
        f.attrs["caffe_commit"] = CAFFE_COMMIT
        for name, blob in net.blobs.items():
            if name in keep:
                assert np.isfinite(blob.data).all(), (name, "non-finite")
                f.create_dataset("blobs/" + urllib.parse.quote(name, safe=""), data=blob.data)
                table.append({"name": name, "shape": list(blob.data.shape)})
    return {"blobs": table}


def generate(spec: public_nets.PublicNet, variant: str, root: str) -> dict:
    out = os.path.join(root, spec.name)
    os.makedirs(out, exist_ok=True)
    path = lambda f: os.path.join(out, f)  # noqa: E731
    text = spec.net(variant)
    with open(path("net.prototxt"), "w") as f:
        f.write(text.text())
    v = getattr(spec, variant)
    seed = zlib.crc32(f"{spec.name}:{variant}".encode())
    frozen = frozen_deconvs(text.layers)

    builder = caffe.Net(path("net.prototxt"), caffe.TEST)
    (input_name,) = builder.inputs
    fill_random(builder, frozen, np.random.RandomState(seed))
    calibrate(builder, frozen, {input_name: sampling.input_array(seed, v.deploy)})
    builder.save(path("net.caffemodel"))
    del builder

    net = caffe.Net(path("net.prototxt"), caffe.TEST, weights=path("net.caffemodel"))
    keep = declared_blobs(path("net.prototxt"))
    outputs = list(net.outputs)
    meta = {"net": spec.name, "variant": variant, "family": spec.family, "source": spec.source,
            "license": spec.license, "width": v.width.factor, "classes": v.classes, "input": input_name,
            "outputs": outputs, "caffe": CAFFE_SOURCE, "generator": f"tools/caffe/make_public_nets.py v{GENERATOR_VERSION}",
            "sizes": {}}
    for k, (size, shape) in enumerate((("deploy", v.deploy), ("odd", v.odd)), start=1):
        x = sampling.input_array(seed + k, shape)
        run(net, {input_name: x})
        for name in outputs:
            assert np.ptp(net.blobs[name].data) > 0, (spec.name, size, name, "constant output")
        entry = {"shape": list(shape), "input_seed": seed + k, "input_sha256": sha256(x)}
        if variant == "small":
            entry.update(record_samples(net, keep, outputs, path(f"{size}.npy")))
        else:
            entry.update(record_all(net, keep, path(f"blobs-{size}.h5")))
        meta["sizes"][size] = entry
    with open(path("meta.json"), "w") as f:
        f.write(meta_text(meta))
    return meta


def meta_text(meta: dict) -> str:
    """meta.json with one line per blob: readable in a diff, a fraction of the indented size."""
    text = json.dumps(meta, indent=1)
    for entry in meta["sizes"].values():
        for blob in entry["blobs"]:
            text = text.replace(json.dumps(blob, indent=1).replace("\n", "\n" + " " * 4), json.dumps(blob), 1)
    return text + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=("small", "full"), default="small")
    parser.add_argument("--only", nargs="*", choices=sorted(public_nets.NETS), help="nets (default: all)")
    parser.add_argument("--out", default=None, help=f"default for small: {FIXTURES}")
    args = parser.parse_args(argv)
    if args.out is None and args.variant == "full":
        parser.error("--variant full needs --out (every blob at full size: gigabytes)")
    caffe.set_mode_cpu()
    for name in args.only or public_nets.NETS:
        meta = generate(public_nets.NETS[name], args.variant, args.out or FIXTURES)
        print(f"{name}: outputs {meta['outputs']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
