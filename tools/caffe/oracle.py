"""Run real Caffe on given inputs and read/write the blobs as HDF5 (tools/caffe/python3 only).

Shared by the fixture generator and the live-oracle CLI so both record blobs the same way:
every blob that the prototxt names (inputs and layer tops), in Caffe's order, with in-place
blobs holding their final value. The Split blobs that Caffe inserts by itself when one blob
feeds several layers are not part of the net as written and are left out.
"""
from __future__ import annotations

import argparse

import h5py
import numpy as np
from caffe.proto import caffe_pb2
from google.protobuf import text_format

CAFFE_COMMIT = "9b89154"
CAFFE_SOURCE = "brocolli-caffe 9.0.2 sdist (BVLC/caffe master 9b89154 plus fork patches), CPU"


def declared_blobs(prototxt: str) -> set[str]:
    """Blob names written in a prototxt: inputs and the tops of `layer` and V1 `layers`."""
    net = caffe_pb2.NetParameter()
    with open(prototxt) as f:
        text_format.Merge(f.read(), net)
    names = set(net.input)
    for layer in list(net.layer) + list(net.layers):
        names.update(layer.top)
    return names


def forward(net, inputs: dict[str, np.ndarray], keep: set[str]) -> dict[str, np.ndarray]:
    """Reshape the input blobs to the given arrays, run Caffe forward, copy the kept blobs."""
    for name, array in inputs.items():
        net.blobs[name].reshape(*array.shape)
        net.blobs[name].data[...] = array
    net.forward()
    return {name: np.array(blob.data, dtype=np.float32, copy=True)
            for name, blob in net.blobs.items() if name in keep}


def write_arrays(group: h5py.Group, arrays: dict[str, np.ndarray], compress: bool) -> None:
    for name, array in arrays.items():
        small = array.ndim == 0 or array.size < 64
        opts = {} if small or not compress else dict(compression="gzip", compression_opts=9, shuffle=True)
        group.create_dataset(name, data=np.asarray(array, np.float32), **opts)


def write_surgery_reference(path: str, proto, inputs: dict[str, np.ndarray], blobs: dict[str, np.ndarray],
                            generator: str, **file_options) -> None:
    """reference.h5 of a surgery fixture: the inputs, every blob, and for each blob the name of the
    last layer of ``proto`` that wrote it (``written_by``), so a test can hook that layer."""
    writer = {}
    for layer in proto.layer:
        for top_name in layer.top:
            writer[top_name] = layer.name
    with h5py.File(path, "w", **file_options) as f:
        f.attrs["caffe_commit"] = CAFFE_COMMIT
        f.attrs["caffe_source"] = CAFFE_SOURCE
        f.attrs["generator"] = generator
        write_arrays(f.create_group("inputs"), inputs, compress=True)
        write_arrays(f.create_group("blobs"), blobs, compress=True)
        for name in blobs:
            f["blobs"][name].attrs["written_by"] = writer.get(name, name)


def read_inputs(path: str) -> dict[str, np.ndarray]:
    """Arrays under `inputs/` if that group exists, else every top-level dataset."""
    with h5py.File(path, "r") as f:
        group = f["inputs"] if "inputs" in f else f
        return {k: np.asarray(v, np.float32) for k, v in group.items() if isinstance(v, h5py.Dataset)}


def chosen_cases(parser: argparse.ArgumentParser, cases: list, only: list[str] | None) -> list:
    """The cases a generator's ``--only`` names (all when it names none), in table order; an unknown
    name is the parser's usage error, and the table must not name a case twice."""
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), "duplicate case names"
    unknown = set(only or ()) - set(names)
    if unknown:
        parser.error(f"unknown cases: {sorted(unknown)}")
    return [c for c in cases if not only or c.name in only]


def solver_text(fields: dict) -> str:
    """SolverParameter as text with the numbers as written (protobuf would print 1e-05 as the float32
    9.999999747378752e-06); Caffe parses it back to the same proto (checked)."""
    enums = {"solver_mode"}
    lines = []
    for key, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, bool):
                text = "true" if item else "false"
            elif isinstance(item, str) and key not in enums:
                text = f'"{item}"'
            else:
                text = repr(item) if isinstance(item, float) else str(item)
            lines.append(f"{key}: {text}")
    text = "\n".join(lines) + "\n"
    parsed = text_format.Merge(text, caffe_pb2.SolverParameter())
    fields = {k: (getattr(caffe_pb2.SolverParameter, v) if k in enums else v) for k, v in fields.items()}
    assert parsed == caffe_pb2.SolverParameter(**fields), text
    return text
