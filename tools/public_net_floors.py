"""Measure the fp32 floor of each public net: how far real Caffe itself is from float64.

    python tools/public_net_floors.py [--folder DIR] [--variant small|full] [--only NET ...]

For each net and size, the float64 computation is this project's runtime with the weights and
the input cast to float64 (every layer in double precision); it is compared with Caffe's fp32
blobs (the floor, max over blobs of max |Caffe - f64| / max |Caffe|) and with our fp32 run. The
floors committed in tools/caffe/public_nets (Variant.floor) come from this table; a net is held to
max(1e-5, 2 x floor). DIR defaults to tests/fixtures/public-nets (``small``); for ``full`` pass
the --out folder of ``make_public_nets.py --variant full``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools" / "caffe"))

from convert import load_caffe  # noqa: E402
from public_nets import NETS, reference  # noqa: E402


def distance(a: dict, b: dict) -> float:
    """max over blobs of max |a - b| / max |b|."""
    worst = 0.0
    for name, ref in b.items():
        ref = ref.double()
        scale = float(ref.abs().max())
        worst = max(worst, float((a[name].double() - ref).abs().max()) / scale if scale > 0 else 0.0)
    return worst


def measure(folder: Path) -> list[tuple[str, float, float, float]]:
    rows = []
    model32 = load_caffe(folder / "net.caffemodel", folder / "net.prototxt")
    model64 = load_caffe(folder / "net.caffemodel", folder / "net.prototxt").double()
    for size in reference.SIZES:
        name, x = reference.caffe_input(folder, size)
        with torch.inference_mode():
            ours32 = model32(**{name: torch.from_numpy(x)}, all_blobs=True)
            ours64 = model64(**{name: torch.from_numpy(x).double()}, all_blobs=True)
        floor = max(reference.errors(ours64, folder, size).values())
        ours = max(reference.errors(ours32, folder, size).values())
        rows.append((size, floor, ours, distance(ours32, ours64)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=ROOT / "tests" / "fixtures" / "public-nets")
    parser.add_argument("--variant", choices=("small", "full"), default="small")
    parser.add_argument("--only", nargs="*", choices=sorted(NETS))
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    print(f"{'net':14} {'size':7} {'Caffe-f64':>10} {'ours-Caffe':>10} {'ours-f64':>10} {'tolerance':>10}")
    for net in args.only or NETS:
        folder = args.folder / net
        if not (folder / "meta.json").exists():
            print(f"{net:14} (not generated)")
            continue
        tolerance = getattr(NETS[net], args.variant).tolerance
        try:
            rows = measure(folder)
        except Exception as error:  # a net the runtime cannot run yet: say so and go on
            print(f"{net:14} error: {str(error)[:100]}")
            continue
        for size, floor, ours, own in rows:
            print(f"{net:14} {size:7} {floor:10.2e} {ours:10.2e} {own:10.2e} {tolerance:10.1e}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
