"""``python -m fcn_ref.infer IMAGE --weights W.pth -o out.png [--overlay vis.jpg]``

Segment one picture as the reference infer.py does: VOC mean subtraction in BGR, a forward pass at
the picture's own size, argmax over classes. The label map is saved as a palette PNG (VOC colours;
pixel values are class indices, as in VOC's ground truth), optionally also as an overlay picture.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from convert.errors import CaffeFormatError
from fcn_ref.loading import load
from fcn_ref.palette import label_image, overlay
from fcn_ref.predict import predict
from fcn_ref.transforms import VOC_MEAN
from fcn_ref.zoo import weights_for


def _mean(text: str) -> np.ndarray:
    values = [float(v) for v in text.split(",")]
    if len(values) != 3:
        raise argparse.ArgumentTypeError("--mean takes three comma-separated numbers (B,G,R)")
    return np.array(values, dtype=np.float64)


def _default_mean(model: object) -> np.ndarray:
    """The mean the weights were trained with (SIFT Flow, PASCAL-Context, NYUD differ from VOC)."""
    entry = weights_for(model)
    if entry is not None and len(entry.means) != 1:
        raise ValueError(f"{entry.file} takes {len(entry.means)} input pictures; infer takes one")
    return entry.means[0] if entry is not None else VOC_MEAN


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fcn_ref.infer", description=__doc__.splitlines()[2])
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        picture = Image.open(args.image)
        picture.load()
    except OSError as exc:
        print(f"error: {args.image}: cannot read the picture ({exc})", file=sys.stderr)
        return 1
    try:
        model = load(args.weights, exact=args.exact)
        labels = predict(model, picture, mean=_default_mean(model) if args.mean is None else args.mean,
                         output=args.output_blob)
    except (CaffeFormatError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    label_image(labels).save(args.output)
    if args.overlay:
        overlay(picture, labels).save(args.overlay)
    classes = ", ".join(str(c) for c in np.unique(labels))
    print(f"{args.output}: {labels.shape[1]}x{labels.shape[0]} label map, classes present: {classes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
