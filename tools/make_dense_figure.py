"""Draw docs/dense-scores.png: the demo picture's score maps at strides 32, 16 and 8 by rarefaction.

    python tools/make_dense_figure.py [--out docs/dense-scores.png]

The bundled tiny FCN-8s (random weights written by real Caffe; its labels mean nothing) is cut at
score_fr, a stride-32 classifier, and rarefied by 2 and 4 (``fcn_ref.dense``): one pass each, and
the score maps are what shift-and-stitch over 4 and 16 shifted pictures would give. Each map's
argmax is drawn in VOC colours where its outputs' receptive-field centres fall on the picture, so
the panels show the same scores sampled 1x, 2x and 4x more densely per axis.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

import fcn_ref
from fcn_ref import dense
from fcn_ref.palette import label_image

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "fcn_ref" / "demo"
FACTORS = (1, 2, 4)
ZOOM = 2  # picture pixels drawn as ZOOM x ZOOM screen pixels
CAPTION = 14


def on_picture(labels: np.ndarray, stride: int, centre: float, height: int, width: int) -> np.ndarray:
    """For each picture pixel, the label of the output whose field centre is nearest."""
    rows = np.clip(np.rint((np.arange(height) - centre) / stride).astype(int), 0, labels.shape[0] - 1)
    cols = np.clip(np.rint((np.arange(width) - centre) / stride).astype(int), 0, labels.shape[1] - 1)
    return labels[np.ix_(rows, cols)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dense-scores.png")
    args = parser.parse_args()
    picture = Image.open(DEMO / "demo.jpg").convert("RGB")
    net = dense.chain(fcn_ref.from_caffemodel(DEMO / "fcn8s-tiny.caffemodel"), "score_fr")
    centre = dense.field_start(net) + (dense.receptive_field(net) - 1) / 2
    x = fcn_ref.preprocess(picture)
    panels = [(picture, "picture")]
    for factor in FACTORS:
        stride = dense.output_stride(net) // factor
        scores = dense.dense_scores(net, x, factor) if factor > 1 else net(x).detach()
        labels = scores[0].argmax(0).numpy().astype(np.uint8)
        drawn = on_picture(labels, stride, centre, picture.height, picture.width)
        panels.append((label_image(drawn).convert("RGB"), f"stride {stride}: {labels.shape[1]}x{labels.shape[0]}"))
    w, h = picture.width * ZOOM, picture.height * ZOOM
    sheet = Image.new("RGB", (len(panels) * (w + 4) - 4, h + CAPTION), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (panel, caption) in enumerate(panels):
        sheet.paste(panel.resize((w, h), Image.NEAREST), (i * (w + 4), CAPTION))
        draw.text((i * (w + 4) + 2, 1), caption, fill="black")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"{args.out}: {sheet.width}x{sheet.height}")


if __name__ == "__main__":
    with torch.no_grad():
        main()
