"""Live oracle: run real Caffe on a net and inputs, write every blob to HDF5.

Usage (under tools/caffe/python3, never the project's python):
    run_forward.py PROTOTXT WEIGHTS INPUTS.h5 OUT.h5

WEIGHTS may be a .caffemodel, a .caffemodel.h5, or `-` for none (Caffe's fillers then decide).
INPUTS.h5 holds one float32 dataset per input blob, under `inputs/` or at the top level; each
input blob is reshaped to its array. OUT.h5 gets `blobs/<name>` for every blob the prototxt
names (Caffe's hidden Split blobs left out), as float32, in TEST phase.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import caffe  # noqa: E402
import h5py  # noqa: E402

from oracle import CAFFE_COMMIT, declared_blobs, forward, read_inputs, write_arrays  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prototxt")
    parser.add_argument("weights", help="caffemodel, caffemodel.h5, or - for none")
    parser.add_argument("inputs", help="HDF5 with one dataset per input blob")
    parser.add_argument("out", help="HDF5 to write blobs/<name> into")
    args = parser.parse_args(argv)

    caffe.set_mode_cpu()
    if args.weights == "-":
        net = caffe.Net(args.prototxt, caffe.TEST)
    else:
        net = caffe.Net(args.prototxt, caffe.TEST, weights=args.weights)
    inputs = read_inputs(args.inputs)
    missing = set(inputs) - set(net.blobs.keys())
    if missing:
        parser.error(f"inputs not in the net: {sorted(missing)}")
    blobs = forward(net, inputs, declared_blobs(args.prototxt))
    with h5py.File(args.out, "w") as f:
        f.attrs["caffe_commit"] = CAFFE_COMMIT
        write_arrays(f.create_group("blobs"), blobs, compress=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
