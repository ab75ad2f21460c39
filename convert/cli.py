"""``python -m convert MODEL``: a Caffe model in, a PyTorch file that loads in one line out.

``--format safetensors`` or ``--format onnx`` writes those instead (``convert.export``); MODEL may
also be a file this command already wrote, to re-export it.

Bad input ends with one line on stderr naming the file (and layer), exit status 1, and no output
file: the output is written to a temporary name and renamed only once it is complete.
"""
from __future__ import annotations

import argparse
import hashlib
import mmap
import os
import sys
import threading
import time
import warnings
from pathlib import Path

from convert.checkpoint import Checkpoint, state_dict_of
from convert.crop_offsets import POLICIES, apply_policy as apply_crop_policy
from convert.errors import CaffeFormatError
from convert.net import CaffeNet
from convert.reader import read_net


def default_output(model: Path, format: str = "pth") -> Path:
    """``x.caffemodel`` / ``x.caffemodel.h5`` / ``x.prototxt`` -> ``x.pth`` (or ``x.<format>``) beside it."""
    from convert.export import default_output as output_for

    return output_for(model, format)


class _Sha256:
    """Hash a file on a background thread while the main thread parses it (hashlib drops the GIL)."""

    def __init__(self, path: Path) -> None:
        self.digest = ""
        self._thread = threading.Thread(target=self._run, args=(path,), daemon=True)
        self._thread.start()

    def _run(self, path: Path) -> None:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                self.digest = hashlib.sha256().hexdigest()
                return
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:  # no copy, unlike read()
                self.digest = hashlib.sha256(view).hexdigest()

    def result(self) -> str:
        self._thread.join()
        return self.digest


def check_supported(net: CaffeNet, path: str) -> None:
    """Fail before writing anything if a layer type has no PyTorch counterpart."""
    from convert.layers import LAYER_BUILDERS, unsupported

    for layer in net.layers:
        if layer.type not in LAYER_BUILDERS:
            raise CaffeFormatError(unsupported(layer.type), path=path, layer=layer.name)


def read_caffe(model: Path | None, prototxt: Path | None, crop_offsets: str = "caffe") -> Checkpoint:
    """Read a Caffe model, refuse unsupported layers, apply the crop-offset policy, hash the source.
    No architecture is stored: which model it is, fcn_ref.load recognizes on reading."""
    source_path = model if model is not None else prototxt
    hasher = _Sha256(source_path) if source_path.is_file() else None
    net = read_net(model, prototxt)
    check_supported(net, str(source_path))
    net = apply_crop_policy(net, crop_offsets)  # "coord-map" writes the offsets into the file
    source = {"file": source_path.name, "sha256": hasher.result() if hasher else ""}
    if prototxt is not None and model is not None:
        source["prototxt"] = prototxt.name
    return Checkpoint(net, None, source, state_dict_of(net))


def convert_file(model: Path | None, prototxt: Path | None, out: Path, force: bool,
                 crop_offsets: str = "caffe", format: str = "pth") -> CaffeNet:
    """Write ``model`` (a Caffe model, or a file this command wrote) to ``out`` as ``format``."""
    from convert.export import read_source, write

    if out.exists() and not force:
        raise CaffeFormatError("output exists; pass --force to overwrite it", path=str(out))
    checkpoint = read_source(model, prototxt, crop_offsets)
    write(checkpoint, out, format, force)
    return checkpoint.net


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convert", description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", type=Path, help=".caffemodel (binary) or .caffemodel.h5 (HDF5), "
                        "or a file this command wrote (.pth, .safetensors) to re-export")
    parser.add_argument("--prototxt", type=Path, help="text net definition; required for HDF5 weights")
    parser.add_argument("-o", "--output", type=Path, help="output file (default: MODEL with the format's suffix, beside it)")
    parser.add_argument("--format", choices=("pth", "safetensors", "onnx"), default="pth",
                        help="output format (default pth; onnx has dynamic height and width)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output file")
    parser.add_argument("--crop-offsets", choices=POLICIES, default="caffe",
                        help="offsets of Crop layers that write none: 'caffe' (BVLC: 0, the default) "
                             "or 'coord-map' (from the coordinate maps, as some forks computed them)")
    args = parser.parse_args(argv)
    if args.model is None and args.prototxt is None:
        parser.error("give MODEL, --prototxt, or both")
    start = time.perf_counter()
    out = args.output or default_output(args.model or args.prototxt, args.format)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            net = convert_file(args.model, args.prototxt, out, args.force, args.crop_offsets, args.format)
        for warning in dict.fromkeys(str(w.message) for w in caught):
            print(f"warning: {warning}", file=sys.stderr)
    except CaffeFormatError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: {e.filename or out}: {e.strerror or e}", file=sys.stderr)
        return 1
    print(f"{args.model or args.prototxt} -> {out}")
    print(f"net {net.name}: {len(net.layers)} layers, {net.num_parameters():,} parameters; "
          f"inputs {', '.join(net.inputs) or '-'}")
    if net.dropped:
        print(f"left out for inference: {', '.join(net.dropped)}")
    print(f"done in {time.perf_counter() - start:.2f} s")
    return 0
