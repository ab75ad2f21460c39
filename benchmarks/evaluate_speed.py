"""fcn_ref.evaluate throughput (images/s) on a synthetic VOC folder, split into model time and the rest.

Run: python benchmarks/evaluate_speed.py [--images 8] [--before]
Model: full-width FCN-8s with random weights (benchmarks/out/fcn8s-full.*), VOC-like image sizes
(500x375 and 375x500). "model" is the time inside the model's forward; "rest" is everything else
fcn_ref.evaluate does (JPEG/PNG decoding, Caffe preprocessing, argmax, confusion matrix).
--before also runs the runtime with its fast paths switched off (benchmarks/paths.py), to compare.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from forward import ensure_model  # noqa: E402
from paths import set_mode  # noqa: E402


class Timed(nn.Module):
    """Wraps a model and adds up the wall time spent in its forward."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.seconds = 0.0

    def forward(self, x: torch.Tensor):
        t0 = time.perf_counter()
        out = self.inner(x)
        out = {k: v.contiguous() for k, v in out.items()} if isinstance(out, dict) else out.contiguous()
        self.seconds += time.perf_counter() - t0
        return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--before", action="store_true")
    args = ap.parse_args()
    from convert.runtime import load_caffe
    from voc.datasets import VOCSegmentation
    from fcn_ref.evaluate import evaluate
    from voc.synthetic import make_voc_folder

    proto, model = ensure_model(500)
    variants = {"runtime": Timed(load_caffe(model, proto))}
    if args.before:
        net = load_caffe(model, proto)
        set_mode(net, "exact")
        variants["runtime without fast paths"] = Timed(net)
    with tempfile.TemporaryDirectory() as tmp:
        make_voc_folder(tmp, num_images=args.images, sizes=((500, 375), (375, 500)))
        data = VOCSegmentation(tmp, "val")
        evaluate(variants["runtime"], [data[0]])  # warm-up
        for name, m in variants.items():
            m.seconds = 0.0
            res = evaluate(m, data)
            rest = res.seconds - m.seconds
            print(f"{name:34} {res.num_images} images in {res.seconds:6.2f} s"
                  f" = {res.num_images / res.seconds:5.2f} img/s;"
                  f" model {m.seconds:6.2f} s ({100 * m.seconds / res.seconds:4.1f}%), rest {rest:5.2f} s"
                  f" ({1000 * rest / res.num_images:.0f} ms/image)", flush=True)


if __name__ == "__main__":
    main()
