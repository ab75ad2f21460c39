"""Dump the weights real Caffe holds after loading each fixture, as the reference for our readers.

Run under tools/caffe/python3:  dump_params.py [FIXTURES_DIR]   (default tests/fixtures)
For every case it writes ``params.h5`` (Caffe loading net.prototxt + net.caffemodel) and, where
Caffe can load them, ``params-v1.h5`` (v1.prototxt + v1.caffemodel, upgraded by Caffe itself):
datasets ``params/<layer>/<i>`` in Caffe's blob shapes. Caffe parses the files here, so a reader
test that compares with these compares with Caffe, not with our own code.
"""
import subprocess
import sys
from pathlib import Path

import caffe
import h5py
import numpy as np


def dump(prototxt: Path, weights: Path, out: Path) -> None:
    net = caffe.Net(str(prototxt), caffe.TEST, weights=str(weights))
    with h5py.File(out, "w") as f:
        f.attrs["caffe"] = "BVLC master 9b89154 (brocolli-caffe 9.0.2)"
        f.attrs["weights"] = weights.name
        for name, blobs in net.params.items():
            for i, blob in enumerate(blobs):
                f.create_dataset(f"params/{name}/{i}", data=np.asarray(blob.data, dtype=np.float32),
                                 compression="gzip")


def dump_in_subprocess(prototxt: Path, weights: Path, out: Path) -> bool:
    """Caffe aborts the whole process on a file it cannot load, so each load gets its own."""
    proc = subprocess.run([sys.executable, __file__, "--one", str(prototxt), str(weights), str(out)],
                          capture_output=True, text=True)
    if proc.returncode:
        out.unlink(missing_ok=True)
    return proc.returncode == 0


def main(root: Path) -> None:
    for case in sorted(p for p in root.iterdir() if (p / "net.caffemodel").exists()):
        if not dump_in_subprocess(case / "net.prototxt", case / "net.caffemodel", case / "params.h5"):
            raise SystemExit(f"{case.name}: Caffe failed to load net.prototxt + net.caffemodel")
        v1_proto, v1_weights = case / "v1.prototxt", case / "v1.caffemodel"
        note = ""
        if v1_proto.exists() and v1_weights.exists():
            ok = dump_in_subprocess(v1_proto, v1_weights, case / "params-v1.h5")
            note = " and params-v1.h5" if ok else " (master Caffe cannot load its V1 files: no params-v1.h5)"
        print(f"{case.name}: params.h5{note}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--one":
        dump(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "tests" / "fixtures")
