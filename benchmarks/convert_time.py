"""`python -m convert F` wall time and peak RSS vs reading the same file once in a bare python.

Run: python benchmarks/convert_time.py [MODEL] [--prototxt P] [--repeats 3]
Default MODEL: benchmarks/out/fcn8s-full.caffemodel (see make_fcn8s_caffemodel.py). Baseline:
`python -c "import torch; open(F,'rb').read()"` (interpreter + torch import + one read of the
bytes), run interleaved with the converter. Peak RSS comes from resource.getrusage(RUSAGE_CHILDREN)
after each child, i.e. the largest child so far, so each command is measured in its own helper
process to keep the two apart.

Each timed run starts from the same state: the previous run's output is deleted and os.sync() flushes
pending writes, both outside the timing. Without that, a run pays for the last run's 513 MiB still
being written back, and (on this ext4 with online discard) for freeing the old output's blocks:
in this VM a plain 513 MiB write alone varies from 0.1 to 1.3 s with the writeback state.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# Runs one command as a child and prints its wall time and the child's peak RSS (bytes) as JSON.
_PROBE = r"""
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
dt = time.perf_counter() - t0
print(json.dumps({"wall": dt, "rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))
"""


def probe(cmd: list[str]) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", _PROBE, *cmd], check=True, capture_output=True, text=True,
                         cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default=str(HERE / "out" / "fcn8s-full.caffemodel"))
    ap.add_argument("--prototxt")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    model = Path(args.model).resolve()
    size = os.path.getsize(model)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.pth"
        conv = [sys.executable, "-m", "convert", str(model), "-o", str(out), "--force"]
        if args.prototxt:
            conv += ["--prototxt", args.prototxt]
        read = [sys.executable, "-c", f"import torch; open({str(model)!r},'rb').read()"]
        runs: dict[str, list[dict[str, float]]] = {"read": [], "convert": []}
        probe(read)  # warm the page cache
        for _ in range(args.repeats):
            os.sync()
            runs["read"].append(probe(read))
            out.unlink(missing_ok=True)
            os.sync()
            runs["convert"].append(probe(conv))
        out_size = os.path.getsize(out)
    med = {k: statistics.median(r["wall"] for r in v) for k, v in runs.items()}
    rss = {k: max(r["rss"] for r in v) for k, v in runs.items()}
    mib = 2**20
    print(f"file {model.name}: {size / mib:.1f} MiB -> .pth {out_size / mib:.1f} MiB; {args.repeats} interleaved runs")
    print(f"{'command':40} {'median s':>9} {'peak RSS MiB':>13} {'RSS / file size':>16}")
    for key, label in (("read", "python -c import torch; read file"), ("convert", "python -m convert F")):
        print(f"{label:40} {med[key]:9.2f} {rss[key] / mib:13.0f} {rss[key] / size:16.2f}")
    print(f"convert / read time ratio: {med['convert'] / med['read']:.2f}; "
          f"extra time over read: {med['convert'] - med['read']:.2f} s")


if __name__ == "__main__":
    main()
