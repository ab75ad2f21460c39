"""One SGD iteration of FCN-8s (forward, backward, Caffe's update): fcn-ref against Caffe's
``solver.step(1)`` in the same run, with each one's peak RSS and share of the fp32 GEMM peak.

    python benchmarks/train_step.py [--size 500] [--width-div 1] [--repeats 3] [--no-caffe] [--before]

Full width at 500x500 is the issue's measurement (a forward is about 363 GFLOP; an iteration is
counted as 3x the forward: forward, input gradients, weight gradients). ``--size``/``--width-div``
make a small smoke run. Each side runs in its own process, so its peak RSS is its own. The GEMM
peak is sampled before every timed step of ours (a shared machine's speed drifts from minute to
minute); shares divide the best step by the best sample, and by the median beside it. Run it on a
quiet machine: the figures in benchmarks/README.md come from such a run, with the CPU model.

fcn-ref's first step on a new machine measures its training paths (``convert.trainpath``; cached in
~/.cache/fcn-ref): a first worker process runs two steps (a layer may choose again in the second,
once the layer after it has recorded a layout hand-off) and reports how long the first took, so the
timed process (which runs one untimed step too) has the cache and its peak RSS is training's own.
``--before`` also times the plain path (autograd ``F.conv2d`` everywhere, all gradients then the update:
``fast_paths`` off, ``update_in_backward=False``) in its own process, for before/after ratios.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from convert import tuning

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CAFFE_PY = ROOT / "tools" / "caffe" / "python3"
FULL_WIDTHS, FULL_FC = (64, 128, 256, 512, 512), (4096, 4096)


def forward_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    """2 x multiply-adds of every convolution and deconvolution in one forward (direct method)."""
    from convert.modules import Convolution, Deconvolution

    total = [0.0]

    def hook(module, args, out) -> None:
        _, per_group, kh, kw = module.weight.shape
        deconv = isinstance(module, (torch.nn.ConvTranspose2d, Deconvolution))
        total[0] += 2.0 * (args[0].numel() if deconv else out.numel()) * per_group * kh * kw

    kinds = (torch.nn.Conv2d, torch.nn.ConvTranspose2d, Convolution, Deconvolution)
    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    with torch.inference_mode():
        model(x)
    for h in hooks:
        h.remove()
    return total[0]


def gemm_peak() -> float:
    """GFLOP/s of a large fp32 GEMM (torch.mm), best of 3."""
    n = 4096
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(_time(lambda: torch.mm(a, b)) for _ in range(3))
    return 2 * n ** 3 / best / 1e9


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ours(work: Path, div: int, repeats: int, before: bool) -> None:
    """fcn-ref's side (a worker process): the zoo FCN-8s + SoftmaxWithLoss under fcn_ref.train.Solver."""
    import h5py
    from google.protobuf import text_format

    from convert.schema import SolverParameter
    from fcn_ref.models import FCN8s
    from fcn_ref.train.solver import Solver
    from fcn_ref.train.zoo import WithLoss, param_specs

    with h5py.File(work / "step.h5", "r") as f:
        batch = {"data": torch.from_numpy(f["data"][()]), "label": torch.from_numpy(f["label"][()])}

    class Fixed:
        tops = ("data", "label")

        def next_batch(self):
            return batch

        def peek_shapes(self):
            return {k: tuple(v.shape) for k, v in batch.items()}

        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass

    model = FCN8s(num_classes=21, widths=tuple(max(1, w // div) for w in FULL_WIDTHS),
                  fc_widths=tuple(max(1, w // div) for w in FULL_FC))
    param = text_format.Parse("base_lr: 1e-14\nlr_policy: 'fixed'\nmomentum: 0.99\nweight_decay: 0.0005\n"
                              "max_iter: 100000\n", SolverParameter())
    if before:
        from convert.fastpath import set_exact

        set_exact(model)
    solver = Solver(WithLoss(model), Fixed(), param, specs=param_specs(model, "model."),
                    update_in_backward=False if before else None)
    flops = forward_flops(model.eval(), batch["data"])
    model.train()
    first = _time(lambda: solver.step(1))  # the first step on a machine measures the paths
    times, peaks = [], []
    for _ in range(repeats):  # the GEMM peak sampled before each step: a shared machine's speed drifts
        peaks.append(gemm_peak())
        times.append(_time(lambda: solver.step(1)))
    print(json.dumps({"times": times or [first], "peaks": peaks or [gemm_peak()], "first": first,
                      "forward_flops": flops, "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}),
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=500)
    parser.add_argument("--width-div", type=int, default=1, help="divide every width by this (smoke runs)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-caffe", action="store_true")
    parser.add_argument("--before", action="store_true", help="also time the plain path (fast paths off)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        ours(Path(args.worker), args.width_div, args.repeats, args.plain)
        return
    import h5py

    work = Path(tempfile.mkdtemp(prefix="train_step_"))
    rng = np.random.default_rng(0)
    with h5py.File(work / "step.h5", "w") as f:
        f["data"] = rng.normal(0, 50, (1, 3, args.size, args.size)).astype(np.float32)
        f["label"] = rng.integers(0, 21, (1, 1, args.size, args.size)).astype(np.float32)

    def worker(plain: bool, repeats: int = args.repeats) -> dict:
        run = subprocess.run([sys.executable, __file__, "--worker", str(work), "--width-div", str(args.width_div),
                              "--repeats", str(repeats)] + (["--plain"] if plain else []),
                             check=True, capture_output=True, text=True)
        return json.loads(run.stdout.strip().splitlines()[-1])

    warm = worker(False, repeats=1)  # measures and caches the training paths where needed
    mine = worker(False)
    plain = worker(True) if args.before else None
    iteration_flops = 3 * mine["forward_flops"]

    # The peak is sampled before every timed step (a shared machine's speed drifts); the share
    # divides the best step by the best sample (both "best of N"), the median is shown beside it.
    peaks = mine["peaks"] + (plain["peaks"] if plain else [])
    peak, median_peak = max(peaks), float(np.median(peaks))
    best = min(mine["times"])

    def share(seconds: float, of: float = peak) -> str:
        return f"{100 * iteration_flops / seconds / 1e9 / of:.0f}%"

    print(f"CPU: {tuning.cpu_model()}, {torch.get_num_threads()} threads; fp32 GEMM peak (torch.mm 4096^3, "
          f"sampled before each timed step) {peak:.0f} GFLOP/s best, {median_peak:.0f} median")
    print(f"FCN-8s {args.size}x{args.size}, widths / {args.width_div}: forward {mine['forward_flops'] / 1e9:.1f} "
          f"GFLOP, iteration counted as {iteration_flops / 1e9:.1f} GFLOP")
    print(f"fcn-ref: {best:.3f} s/iteration (best of {args.repeats}), {iteration_flops / best / 1e9:.0f} GFLOP/s = "
          f"{share(best)} of peak ({share(best, median_peak)} of the median), peak RSS "
          f"{mine['maxrss_kib'] / 2**20:.2f} GiB (first step, measuring the paths unless cached: "
          f"{warm['first']:.1f} s, peak RSS {warm['maxrss_kib'] / 2**20:.2f} GiB)")
    if plain is not None:
        plain_best = min(plain["times"])
        print(f"plain:   {plain_best:.3f} s/iteration, {share(plain_best)} of peak, peak RSS "
              f"{plain['maxrss_kib'] / 2**20:.2f} GiB; fcn-ref is {plain_best / best:.2f}x its speed, "
              f"{mine['maxrss_kib'] / plain['maxrss_kib']:.2f}x its memory")
    if args.no_caffe or not CAFFE_PY.exists():
        print("Caffe: not run" + ("" if args.no_caffe else f" ({CAFFE_PY} missing)"))
        return
    res = subprocess.run([str(CAFFE_PY), str(HERE / "caffe_train_step.py"), str(work), str(args.width_div),
                          str(args.repeats)], check=True, capture_output=True, text=True)
    lines = dict(line.split(" ", 1) for line in res.stdout.splitlines() if line.startswith("caffe_"))
    caffe_best = min(float(t) for t in lines["caffe_times"].split())
    caffe_rss = int(lines["caffe_maxrss_kib"]) / 2**20
    print(f"Caffe:   {caffe_best:.3f} s/iteration (best of {args.repeats}), "
          f"{share(caffe_best)} of peak ({share(caffe_best, median_peak)} of the median), "
          f"peak RSS {caffe_rss:.2f} GiB")
    print(f"fcn-ref is {caffe_best / best:.2f}x Caffe's speed, {mine['maxrss_kib'] / 2**20 / caffe_rss:.2f}x its memory")


if __name__ == "__main__":
    main()
