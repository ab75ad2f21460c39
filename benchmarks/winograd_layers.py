"""Per-layer time and error of Winograd F(2x2,3x3)/F(4x4,3x3) vs F.conv2d on VGG16/FCN shapes.

Shapes are the FCN-8s trunk at a 500x500 input (conv1_1 pad 100). Error is max|y - ref| / max|ref|
against float64 F.conv2d on the same data. Run: python benchmarks/winograd_layers.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import interleaved  # noqa: E402

from convert.winograd import transform_weight, winograd_conv3x3  # noqa: E402

# name, Cin, Cout, input H (=W), padding; count = how many such layers FCN-8s has.
LAYERS = [
    ("conv1_1", 3, 64, 500, 100, 1),
    ("conv1_2", 64, 64, 698, 1, 1),
    ("conv2_1", 64, 128, 349, 1, 1),
    ("conv2_2", 128, 128, 349, 1, 1),
    ("conv3_1", 128, 256, 175, 1, 1),
    ("conv3_x", 256, 256, 175, 1, 2),
    ("conv4_1", 256, 512, 88, 1, 1),
    ("conv4_x", 512, 512, 88, 1, 2),
    ("conv5_x", 512, 512, 44, 1, 3),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="")
    ap.add_argument("--channels-last", action="store_true", help="NHWC input and weights")
    args = ap.parse_args()
    torch.manual_seed(0)
    tot = {"conv2d": 0.0, "F2": 0.0, "F4": 0.0, "best": 0.0}
    print(f"channels_last={args.channels_last} threads={torch.get_num_threads()}"
          f"  times are medians of {args.repeats} interleaved runs")
    print(f"{'layer':8} {'shape':>22} {'conv2d s':>9} {'F2 s':>7} {'F4 s':>7} {'F2 x':>6} {'F4 x':>6}"
          f" {'err conv2d':>10} {'err F2':>8} {'err F4':>8}")
    with torch.inference_mode():
        for name, cin, cout, hw, pad, count in LAYERS:
            if args.only and args.only not in name:
                continue
            x = torch.relu(torch.randn(1, cin, hw, hw))
            if args.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            w = torch.randn(cout, cin, 3, 3) * (2.0 / (9 * cin)) ** 0.5
            b = torch.randn(cout) * 0.1
            u2, u4 = transform_weight(w, 2), transform_weight(w, 4)
            if args.channels_last:
                w = w.contiguous(memory_format=torch.channels_last)
            fns = {
                "conv2d": lambda: F.conv2d(x, w, b, padding=pad),
                "F2": lambda: winograd_conv3x3(x, u2, b, pad),
                "F4": lambda: winograd_conv3x3(x, u4, b, pad),
            }
            t = interleaved(fns, repeats=args.repeats)
            ref = F.conv2d(x.double(), w.double(), b.double(), padding=pad)
            scale = ref.abs().max().item()
            err = {k: ((f().double() - ref).abs().max().item() / scale) for k, f in fns.items()}
            del ref
            for k in ("conv2d", "F2", "F4"):
                tot[k] += count * t[k]
            tot["best"] += count * min(t.values())
            print(f"{name:8} {f'{cin}->{cout} @{hw} x{count}':>22} {t['conv2d']:9.4f} {t['F2']:7.4f} {t['F4']:7.4f}"
                  f" {t['conv2d'] / t['F2']:6.2f} {t['conv2d'] / t['F4']:6.2f}"
                  f" {err['conv2d']:10.2e} {err['F2']:8.2e} {err['F4']:8.2e}", flush=True)
    print(f"total 3x3 convs (weighted by count): conv2d {tot['conv2d']:.3f} s, all-F2 {tot['F2']:.3f} s, "
          f"all-F4 {tot['F4']:.3f} s, best-per-layer {tot['best']:.3f} s")


if __name__ == "__main__":
    main()
