"""FCN-8s (full width, random weights) 500x500 forward: our converted model vs real Caffe vs OpenCV dnn.

Run: python benchmarks/forward.py [--rounds 3] [--size 500]
Needs benchmarks/out/fcn8s-full.{prototxt,caffemodel} (made here with real Caffe if missing),
tools/caffe/python3 (real Caffe, timed inside its own process) and, optionally, opencv-python-headless.
Every variant runs on the same input; torch variants and OpenCV are interleaved round-robin, Caffe
runs in a subprocess before and after them. Prints medians, ratios, max|diff|/max|ref| and argmax
agreement vs Caffe, and the fraction of the machine's peak (FLOPs of direct convolution / time /
the fastest large fp32 GEMM measured in the same run).

Our variants are one loaded net in three modes (benchmarks/paths.py): "exact" (no fast path, as
``exact=True``), "measured" (the runtime as shipped: each layer's path measured on this machine and
accuracy-gated; the first call measures, so it runs before any timing) and "rules" (the fixed rules
tuned on an AMD EPYC, for comparison). Prints each layer's measured choice with its share of the FLOPs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
CAFFE_PY = ROOT / "tools" / "caffe" / "python3"
sys.path.insert(0, str(HERE))

from flops import direct_flops, per_layer_flops  # noqa: E402
from paths import MODES, layer_paths, set_mode  # noqa: E402


def ensure_model() -> tuple[Path, Path]:
    """The full-width net and weights (any input size: every runner reshapes to the input)."""
    proto, model = OUT / "fcn8s-full.prototxt", OUT / "fcn8s-full.caffemodel"
    if not model.exists():
        subprocess.run([str(CAFFE_PY), str(HERE / "make_fcn8s_caffemodel.py"), str(OUT)], check=True)
    return proto, model


def caffe_run(proto: Path, model: Path, inp: Path, repeats: int) -> tuple[list[float], np.ndarray]:
    out = OUT / "caffe_score.npy"
    res = subprocess.run([str(CAFFE_PY), str(HERE / "caffe_forward.py"), str(proto), str(model), str(inp),
                          str(out), str(repeats)], check=True, capture_output=True, text=True)
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("caffe_times")][-1]
    return [float(t) for t in line.split()[1:]], np.load(out)


def gemm_peak() -> dict[str, float]:
    """GFLOP/s of a large fp32 GEMM through MKL (torch.mm) and through oneDNN (mkldnn linear)."""
    n = 4096
    a, b = torch.randn(n, n), torch.randn(n, n)
    res = {}
    fns = {"mkl_mm": lambda: torch.mm(a, b)}
    if hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        fns["onednn_linear"] = lambda: torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], "")
    for k, f in fns.items():
        f()
        ts = []
        for _ in range(3):
            t0 = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
        res[k] = 2 * n**3 / min(ts) / 1e9
    return res


def rel(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - ref).max() / np.abs(ref).max())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size", type=int, default=500)
    ap.add_argument("--caffe-repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    proto, model = ensure_model()
    rng = np.random.RandomState(1)
    x_np = rng.uniform(-120, 130, (1, 3, args.size, args.size)).astype(np.float32)
    inp = OUT / f"input-{args.size}.npy"
    np.save(inp, x_np)
    x = torch.from_numpy(x_np)

    from convert.gemm import onednn_linear
    from convert.runtime import load_caffe
    t0 = time.perf_counter()
    net = load_caffe(model, proto)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    set_mode(net, "measured")
    paths = layer_paths(net, x)  # the first call measures every layer (cached on disk afterwards)
    measure_s = time.perf_counter() - t0
    layer_flops = per_layer_flops(net, x)

    def ours(mode: str):
        def run() -> torch.Tensor:
            set_mode(net, mode)
            return net(x)["score"].contiguous()
        return run

    variants = {f"ours: {MODES[m]}": ours(m) for m in ("exact", "measured", "rules")}
    try:
        import cv2
        cvnet = cv2.dnn.readNetFromCaffe(str(proto), str(model))

        def run_cv() -> np.ndarray:
            cvnet.setInput(x_np)
            return cvnet.forward()
        variants["OpenCV dnn " + cv2.__version__] = run_cv
    except ImportError:
        print("opencv not installed: skipping OpenCV dnn")

    caffe_t, caffe_out = caffe_run(proto, model, inp, args.caffe_repeats)
    times: dict[str, list[float]] = {k: [] for k in variants}
    outs = {}
    with torch.inference_mode():
        for k, f in variants.items():  # warm-up (allocator, oneDNN primitives, Winograd transforms)
            outs[k] = f()
        for _ in range(args.rounds):
            for k, f in variants.items():
                t1 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t1)
        peak = gemm_peak()
    caffe_t2, _ = caffe_run(proto, model, inp, args.caffe_repeats)
    caffe_times = caffe_t[1:] + caffe_t2[1:]  # first forward of each process allocates buffers
    caffe_s = statistics.median(caffe_times)
    flops = direct_flops(net, x)
    best_peak = max(peak.values())
    cv_key = next((k for k in variants if k.startswith("OpenCV")), None)
    cv_s = statistics.median(times[cv_key]) if cv_key else float("nan")
    caffe_argmax = caffe_out.argmax(axis=1)

    from convert.tuning import cache_file, machine_key
    print(f"input 1x3x{args.size}x{args.size}, torch {torch.__version__}, threads={torch.get_num_threads()}, "
          f"rounds={args.rounds}, Caffe forwards={len(caffe_times)}; load_caffe {load_s:.1f} s; "
          f"first (measuring) call {measure_s:.1f} s; "
          f"oneDNN linear op: {'yes' if onednn_linear() else 'no (fallback F.linear/torch.bmm)'}")
    print(f"CPU: {machine_key()['cpu']}; measured choices cached in {cache_file() or '(memory only)'}")
    print("per-layer choice (measured):")
    for layer, path in paths.items():
        print(f"  {layer:16} {path:22} {layer_flops.get(layer, 0) / 1e9:7.2f} GFLOP "
              f"({100 * layer_flops.get(layer, 0) / max(1.0, sum(layer_flops.values())):4.1f}%)")
    print(f"FLOPs: {flops / 1e9:.1f} GFLOP = 2 x multiply-adds of direct convolution and deconvolution "
          f"(pools, ReLU, crops, sums not counted; Winograd does fewer multiplications, still counted so)")
    print("peak: fastest 4096^3 fp32 GEMM measured now: "
          + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items()) + f"; %peak uses {best_peak:.0f}")
    header = (f"{'variant':92} {'median s':>8} {'min s':>7} {'vs Caffe':>8} {'vs OpenCV':>9} {'%peak':>6}"
              f" {'rel diff':>9} {'argmax=':>8}")
    print(header)

    def row(name: str, med: float, low: float, diff: float, agree: float) -> None:
        print(f"{name:92} {med:8.3f} {low:7.3f} {caffe_s / med:8.2f} {cv_s / med:9.2f}"
              f" {100 * flops / med / 1e9 / best_peak:6.1f} {diff:9.2e} {100 * agree:7.3f}%")
    row("Caffe (OpenBLAS, timed in its own process)", caffe_s, min(caffe_times), 0.0, 1.0)
    for k in variants:
        o = outs[k].numpy() if isinstance(outs[k], torch.Tensor) else outs[k]
        row(k, statistics.median(times[k]), min(times[k]), rel(o, caffe_out),
            float((o.argmax(axis=1) == caffe_argmax).mean()))
    print("vs X = X's median time / the variant's (higher is faster); rel diff = max|ours - Caffe| / "
          "max|Caffe| on the score blob; argmax= : pixels whose class equals Caffe's")


if __name__ == "__main__":
    main()
