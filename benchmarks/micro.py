"""Small measurements behind the choices in README.md, each against a baseline in the same run.

Run: python benchmarks/micro.py [--repeats 5]
  - fc6 (7x7, 512 -> 4096, 22x22 -> 16x16): F.conv2d (NCHW / NHWC) vs im2col + one GEMM (MKL / oneDNN)
  - FCN bilinear deconvolutions: full conv_transpose2d vs depthwise (diagonal kernel)
  - autograd modes on the FCN-8s trunk block conv3 (grad enabled / no_grad / inference_mode)
  - threads: torch.set_num_threads(1) vs the default
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import interleaved  # noqa: E402
from convert.gemm import conv2d_gemm  # noqa: E402


def show(title: str, t: dict[str, float], flops: float | None = None) -> None:
    base = next(iter(t.values()))
    print(f"-- {title}")
    for k, v in t.items():
        extra = f" {flops / v / 1e9:6.0f} GFLOP/s" if flops else ""
        print(f"   {k:34} {v:8.4f} s  x{base / v:5.2f} vs first{extra}", flush=True)


def fc6(repeats: int) -> None:
    x = torch.relu(torch.randn(1, 512, 22, 22))
    w = torch.randn(4096, 512, 7, 7) * 0.01
    b = torch.randn(4096)
    xl, wl = x.contiguous(memory_format=torch.channels_last), w.contiguous(memory_format=torch.channels_last)
    w2 = w.reshape(4096, -1)

    def mkl() -> torch.Tensor:
        return torch.addmm(b.view(-1, 1), w2, F.unfold(x, 7)[0]).view(1, 4096, 16, 16)
    t = interleaved({
        "F.conv2d NCHW": lambda: F.conv2d(x, w, b),
        "F.conv2d NHWC input, NCHW weight": lambda: F.conv2d(xl, w, b),
        "F.conv2d NHWC input and weight": lambda: F.conv2d(xl, wl, b),
        "unfold + MKL addmm": mkl,
        "im2col + oneDNN linear (NCHW in)": lambda: conv2d_gemm(x, w, b),
        "im2col + oneDNN linear (NHWC in)": lambda: conv2d_gemm(xl, w, b),
    }, repeats)
    show("fc6 at 500x500 input", t, 2 * 4096 * 512 * 49 * 256)


def deconv(repeats: int) -> None:
    k = 21
    for name, size, ks, s in (("upscore2", 16, 4, 2), ("upscore_pool4", 34, 4, 2), ("upscore8", 70, 16, 8)):
        x = torch.randn(1, k, size, size)
        w = torch.zeros(k, k, ks, ks)
        d = torch.rand(k, ks, ks)
        w[range(k), range(k)] = d
        t = interleaved({
            "full conv_transpose2d": lambda: F.conv_transpose2d(x, w, stride=s),
            "depthwise (groups=21)": lambda: F.conv_transpose2d(x, d.unsqueeze(1), stride=s, groups=k),
        }, repeats)
        show(f"{name} {k}x{size}x{size} k{ks} s{s}", t)


def grad_modes(repeats: int) -> None:
    x = torch.relu(torch.randn(1, 256, 175, 175))
    ws = [torch.randn(256, 256, 3, 3) * 0.02 for _ in range(3)]

    def block() -> torch.Tensor:
        h = x
        for w in ws:
            h = torch.relu(F.conv2d(h, w, padding=1))
        return F.max_pool2d(h, 2, 2, ceil_mode=True)

    def no_grad() -> torch.Tensor:
        with torch.no_grad():
            return block()

    def inference() -> torch.Tensor:
        with torch.inference_mode():
            return block()
    show("conv3 block (3 convs + pool), weights without requires_grad",
         interleaved({"grad enabled": block, "no_grad": no_grad, "inference_mode": inference}, repeats))


def threads(repeats: int) -> None:
    x = torch.relu(torch.randn(1, 512, 88, 88))
    w = torch.randn(512, 512, 3, 3) * 0.02
    default = torch.get_num_threads()

    def with_threads(n: int):
        def run() -> torch.Tensor:
            torch.set_num_threads(n)
            try:
                return F.conv2d(x, w, padding=1)
            finally:
                torch.set_num_threads(default)
        return run
    show(f"conv4_2 with torch threads (default {default}, os.cpu_count() here)",
         interleaved({f"default ({default})": lambda: F.conv2d(x, w, padding=1),
                      "set_num_threads(1)": with_threads(1), "set_num_threads(2)": with_threads(2)}, repeats))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    fc6(args.repeats)
    deconv(args.repeats)
    grad_modes(args.repeats)
    threads(args.repeats)


if __name__ == "__main__":
    main()
