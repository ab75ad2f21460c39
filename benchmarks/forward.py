"""FCN-8s (full width, random weights) 500x500 forward: our converted model vs real Caffe vs OpenCV dnn.

Run: python benchmarks/forward.py [--rounds 3] [--size 500]
Needs benchmarks/out/fcn8s-full.{prototxt,caffemodel} (made here with real Caffe if missing),
tools/caffe/python3 (real Caffe, timed inside its own process) and, optionally, opencv-python-headless.
Every variant runs on the same input; torch variants and OpenCV are interleaved round-robin, Caffe
runs in a subprocess before and after them. Prints medians, ratios and max|diff|/max|ref| vs Caffe.
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

from fcn8s_spec import conv_flops  # noqa: E402
from gemm_conv import use_gemm  # noqa: E402
from winograd_swap import use_winograd  # noqa: E402

# Winograd F(4x4,3x3) where it measured faster than oneDNN's direct convolution (README.md).
# conv4_1 (256 -> 512) measured no gain, conv1-conv3 were slower (benchmarks/winograd_layers.py).
WINOGRAD_LAYERS = {name: 4 for name in ("conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3")}
# Unpadded stride-1 convolutions run as one oneDNN GEMM (gemm_conv.py).
GEMM_LAYERS = {"fc6", "fc7", "score_fr", "score_pool4", "score_pool3"}


def ensure_model(size: int) -> tuple[Path, Path]:
    proto, model = OUT / "fcn8s-full.prototxt", OUT / "fcn8s-full.caffemodel"
    if not model.exists():
        subprocess.run([str(CAFFE_PY), str(HERE / "make_fcn8s_caffemodel.py"), str(OUT)], check=True)
    if size != 500:  # same weights, other input size: a prototxt with another Input shape
        from fcn8s_spec import fcn8s_prototxt
        proto = OUT / f"fcn8s-full-{size}.prototxt"
        proto.write_text(fcn8s_prototxt(size, size))
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
    proto, model = ensure_model(args.size)
    rng = np.random.RandomState(1)
    x_np = rng.uniform(-120, 130, (1, 3, args.size, args.size)).astype(np.float32)
    inp = OUT / f"input-{args.size}.npy"
    np.save(inp, x_np)
    x = torch.from_numpy(x_np)

    from convert.runtime import load_caffe
    t0 = time.perf_counter()
    net = load_caffe(model, proto)
    load_s = time.perf_counter() - t0
    gnet = load_caffe(model, proto)
    gemm = use_gemm(gnet, GEMM_LAYERS)
    wnet = load_caffe(model, proto)
    use_gemm(wnet, GEMM_LAYERS)
    swapped = use_winograd(wnet, WINOGRAD_LAYERS)
    xl = x.contiguous(memory_format=torch.channels_last)

    def out_of(result: dict) -> torch.Tensor:
        return result["score"]

    variants = {
        "ours (runtime, NCHW)": lambda: out_of(net(x)).contiguous(),
        "ours (runtime, channels_last input)": lambda: out_of(net(xl)).contiguous(),
        "ours (NCHW + GEMM fc6/1x1)": lambda: out_of(gnet(x)).contiguous(),
        "ours (channels_last + GEMM fc6/1x1)": lambda: out_of(gnet(xl)).contiguous(),
        "ours (c_last + GEMM + Winograd F4 conv4_2..5_3)": lambda: out_of(wnet(xl)).contiguous(),
    }
    try:
        import cv2
        cvnet = cv2.dnn.readNetFromCaffe(str(proto), str(model))

        def run_cv() -> np.ndarray:
            cvnet.setInput(x_np)
            return cvnet.forward()
        variants["opencv dnn " + cv2.__version__] = run_cv
    except ImportError:
        print("opencv not installed: skipping OpenCV dnn")

    caffe_t, caffe_out = caffe_run(proto, model, inp, args.caffe_repeats)
    times: dict[str, list[float]] = {k: [] for k in variants}
    outs = {}
    with torch.inference_mode():
        for k, f in variants.items():  # warm-up (allocator, oneDNN primitive caches)
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
    flops = sum(conv_flops(args.size, args.size).values())
    best_peak = max(peak.values())
    cv_key = next((k for k in variants if k.startswith("opencv")), None)
    cv_s = statistics.median(times[cv_key]) if cv_key else float("nan")

    print(f"input 1x3x{args.size}x{args.size}, threads={torch.get_num_threads()}, rounds={args.rounds}; "
          f"load_caffe {load_s:.1f} s;\n  GEMM layers: {','.join(gemm)}; Winograd layers: {','.join(swapped)}")
    print(f"model FLOPs (2*MACs of direct conv/deconv): {flops / 1e9:.1f} GFLOP; "
          + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items()))
    print(f"{'variant':48} {'median s':>9} {'min s':>7} {'vs caffe':>9} {'vs opencv':>9} {'%peak':>6}"
          f" {'rel diff vs caffe':>18}")
    print(f"{'caffe (OpenBLAS, in-process timing)':48} {caffe_s:9.3f} {min(caffe_times):7.3f} {1.0:9.2f}"
          f" {cv_s / caffe_s:9.2f} {100 * flops / caffe_s / 1e9 / best_peak:6.1f} {0.0:18.2e}")
    for k in variants:
        med = statistics.median(times[k])
        o = outs[k].numpy() if isinstance(outs[k], torch.Tensor) else outs[k]
        print(f"{k:48} {med:9.3f} {min(times[k]):7.3f} {caffe_s / med:9.2f} {cv_s / med:9.2f}"
              f" {100 * flops / med / 1e9 / best_peak:6.1f} {rel(o, caffe_out):18.2e}")
    print("ratios: 'vs caffe' = caffe time / variant time (higher is faster); %peak = FLOPs / time / "
          "best large-GEMM GFLOP/s measured above")


if __name__ == "__main__":
    main()
