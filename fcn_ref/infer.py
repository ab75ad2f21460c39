"""``python -m fcn_ref.infer IMAGE --weights W.pth -o out.png [--overlay vis.jpg]``

Segment one picture as the reference infer.py does: VOC mean subtraction in BGR, a forward pass at
the picture's own size, argmax over classes. The label map is saved as a palette PNG (VOC colours;
pixel values are class indices, as in VOC's ground truth), optionally also as an overlay picture.

Every output path is checked (folder, format) before the model runs, and each picture is encoded
in memory before its file is written, so a failure leaves no partial output and no traceback.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from convert.errors import CaffeFormatError
from fcn_ref.loading import load
from fcn_ref.palette import label_image, overlay
from fcn_ref.predict import predict
from fcn_ref.transforms import VOC_MEAN
from fcn_ref.zoo import weights_for
from voc.datasets import VOC_CLASSES


class InferError(CaffeFormatError):
    """A picture or an output path that ``infer`` cannot use (one line naming the file)."""


def _mean(text: str) -> np.ndarray:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3:
        raise argparse.ArgumentTypeError("--mean takes three comma-separated numbers (B,G,R)")
    return np.array(values, dtype=np.float64)


def _default_mean(model: object) -> np.ndarray:
    """The mean the weights were trained with (SIFT Flow, PASCAL-Context, NYUD differ from VOC)."""
    entry = weights_for(model)
    if entry is not None and len(entry.means) != 1:
        raise ValueError(f"{entry.file} takes {len(entry.means)} input pictures; infer takes one")
    return entry.means[0] if entry is not None else VOC_MEAN


def class_name(model: object, label: int) -> str:
    """The class name of a label: from the weights' zoo entry, else VOC's for a 21-class model."""
    entry = weights_for(model)
    if entry is not None:
        names = entry.classes or ()
    else:
        classes = getattr(getattr(model, "config", None), "num_classes", None)
        names = VOC_CLASSES if classes == len(VOC_CLASSES) else ()
    return names[label] if label < len(names) else ""


def check_output(path: Path, mode: str) -> str:
    """The PIL format to write ``path`` in; refuses a missing or unwritable folder, an extension PIL
    does not know, or a format that cannot hold a ``mode`` picture (a palette map in JPEG)."""
    if path.is_dir():
        raise InferError("output is a directory; give a file name", path=str(path))
    if not path.parent.is_dir():
        raise InferError("output folder does not exist", path=str(path))
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise InferError(f"unknown picture extension '{path.suffix}' (use .png)", path=str(path))
    try:
        Image.new(mode, (1, 1)).save(io.BytesIO(), format=fmt)
    except (OSError, ValueError, KeyError) as e:
        raise InferError(f"cannot write a {'label map' if mode == 'P' else 'picture'} as {fmt} ({e})",
                         path=str(path)) from None
    try:
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise InferError(f"output folder is not writable ({e.strerror})", path=str(path)) from None
    return fmt


def write_picture(picture: Image.Image, path: Path, fmt: str) -> None:
    """Encode in memory, then write: a failure leaves no half-written file."""
    buf = io.BytesIO()
    picture.save(buf, format=fmt)
    try:
        path.write_bytes(buf.getvalue())
    except OSError as e:
        path.unlink(missing_ok=True)
        raise InferError(f"cannot write: {e.strerror}", path=str(path)) from None


def read_picture(path: Path) -> Image.Image:
    try:
        picture = Image.open(path)
        picture.load()
    except FileNotFoundError:
        raise InferError("no such file", path=str(path)) from None
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise InferError(f"cannot read the picture ({e})".splitlines()[0], path=str(path)) from None
    return picture


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fcn_ref.infer",
                                     description=" ".join(__doc__.split("\n\n")[1].split()))
    parser.add_argument("image", type=Path, help="picture to segment (any format PIL reads)")
    parser.add_argument("--weights", type=Path, required=True, help="model converted by python -m convert")
    parser.add_argument("-o", "--output", type=Path, required=True, help="label map to write (palette PNG)")
    parser.add_argument("--overlay", type=Path, help="also write the picture blended with the label colours")
    parser.add_argument("--mean", type=_mean, help="BGR mean to subtract (default: the zoo entry of the "
                        "weights' source file, else VOC's)")
    parser.add_argument("--output-blob", help="which output to use when the model has several")
    parser.add_argument("--exact", action="store_true",
                        help="no fast paths: every layer exactly as F.conv2d computes it (slower)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> str:
    """Segment and write; the summary line. Raises CaffeFormatError (one line naming the file)."""
    label_format = check_output(args.output, "P")
    overlay_format = check_output(args.overlay, "RGB") if args.overlay else None
    picture = read_picture(args.image)
    model = load(args.weights, exact=args.exact)
    try:
        mean = _default_mean(model) if args.mean is None else args.mean
        labels = predict(model, picture, mean=mean, output=args.output_blob)
    except (ValueError, TypeError, KeyError) as e:
        raise InferError(str(e.args[0] if isinstance(e, KeyError) else e), path=str(args.weights)) from None
    write_picture(label_image(labels), args.output, label_format)
    if args.overlay:
        write_picture(overlay(picture, labels), args.overlay, overlay_format)
    present = ", ".join(f"{c} {class_name(model, c)}".strip() for c in np.unique(labels).tolist())
    return f"{args.output}: {labels.shape[1]}x{labels.shape[0]} label map, classes present: {present}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        print(run(args))
    except CaffeFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
