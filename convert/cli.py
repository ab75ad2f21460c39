"""``python -m convert MODEL``: a Caffe model in, a PyTorch file that loads in one line out.

``--format safetensors`` or ``--format onnx`` writes those instead (``convert.export``); MODEL may
also be a file this command already wrote, to re-export it.

Bad input ends with one line on stderr naming the file (and layer), exit status 1, and no output
file: the output is written to a temporary name, loaded back, and renamed only once it is proven.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from convert.converter import Conversion, convert_file
from convert.crop_offsets import POLICIES
from convert.errors import CaffeFormatError
from convert.export import FORMATS


def summary(model: Path, result: Conversion, seconds: float) -> list[str]:
    lines = [f"{model} -> {result.output}",
             f"net {result.name}: {result.layers} layers, {result.parameters:,} parameters; "
             f"inputs {', '.join(result.inputs) or '-'}"]
    if result.dropped:
        lines.append(f"left out for inference: {', '.join(result.dropped)}")
    lines.append(f"done in {seconds:.2f} s")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convert", description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", type=Path, help=".caffemodel (binary) or .caffemodel.h5 (HDF5)")
    parser.add_argument("--prototxt", type=Path, help="text net definition; required for HDF5 weights")
    parser.add_argument("-o", "--output", type=Path,
                        help="output file (default: MODEL with the format's suffix, beside it)")
    parser.add_argument("--format", choices=tuple(FORMATS), default="pth",
                        help="pth (default; loads with convert.load / fcn_ref.load), safetensors, or onnx "
                             "(dynamic height and width)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output file")
    parser.add_argument("--crop-offsets", choices=POLICIES, default="caffe",
                        help="offsets of Crop layers that write none: 'caffe' (BVLC: 0, the default) "
                             "or 'coord-map' (from the coordinate maps, as some forks computed them)")
    args = parser.parse_args(argv)
    if args.model is None and args.prototxt is None:
        parser.error("give MODEL, --prototxt, or both")
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = convert_file(args.model, args.prototxt, args.output, force=args.force,
                                  crop_offsets=args.crop_offsets, format=args.format)
        for warning in dict.fromkeys(str(w.message) for w in caught):
            print(f"warning: {warning}", file=sys.stderr)
    except CaffeFormatError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: {e.filename or args.model or args.prototxt}: {e.strerror or e}", file=sys.stderr)
        return 1
    print("\n".join(summary(args.model or args.prototxt, result, time.perf_counter() - start)))
    return 0
