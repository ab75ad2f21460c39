"""Dump the weights real Caffe holds after loading a net, as the reference for our readers.

Run under tools/caffe/python3:  dump_params.py PROTOTXT WEIGHTS OUT.h5
Writes ``params/<layer>/<i>`` (float32, Caffe's blob shapes) for every layer with parameters. Caffe
itself parses WEIGHTS here (binary, legacy V1 or HDF5), so a reader test that compares with this file
compares with Caffe, not with our own code.
"""
import sys

import caffe
import h5py
import numpy as np


def main(prototxt: str, weights: str, out: str) -> None:
    net = caffe.Net(prototxt, caffe.TEST, weights=weights)
    with h5py.File(out, "w") as f:
        f.attrs["caffe"] = "BVLC master 9b89154 (brocolli-caffe 9.0.2)"
        f.attrs["weights"] = weights.rsplit("/", 1)[-1]
        for name, blobs in net.params.items():
            for i, blob in enumerate(blobs):
                f.create_dataset(f"params/{name}/{i}", data=np.asarray(blob.data, dtype=np.float32),
                                 compression="gzip")


if __name__ == "__main__":
    main(*sys.argv[1:4])
