"""Score a segmentation model on PASCAL VOC the way the FCN paper did, and set it beside the paper.

    python -m fcn_ref.evaluate --weights fcn8s-heavy-pascal.pth --voc-root VOCdevkit/VOC2012
        [--split seg11valid] [--save-dir D] [--json F] [--confusion C.png] [--published KEY]

Images are scored at their native size (resizing moves mean IU by about a point), one confusion
matrix is summed over the whole split, and the metrics come from ``voc.metrics``. The data, splits
and metrics are ``voc``'s; running a model on them is an application, so it lives here. The published
rows are found from the caffemodel name kept in the converted file (``source.file``), so a run on
seg11valid prints ours, the paper's, and the difference side by side.

Sharded: ``torchrun --nproc-per-node N -m fcn_ref.evaluate ...`` gives rank r the images r, r + N,
...; the ranks' confusion matrices (integer counts) are summed, so the metrics equal a single
process's exactly. Rank 0 prints and writes the report.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
from PIL import Image

from convert.errors import CaffeFormatError
from convert.fastpath import set_exact
from fcn_ref.devices import DeviceError, pick_device
from fcn_ref.distributed import init_from_env, shutdown, sum_array
from fcn_ref.loading import load
from fcn_ref.predict import Model, ScoresError, caffe_input, predict_batch
from voc.datasets import VOC_CLASSES, VOC_MEAN_BGR, Sample, VOCSegmentation, seg11valid_ids
from voc.metrics import Scores, fast_hist, scores
from voc.palette import save_label_png
from fcn_ref.zoo import Published, lookup


@dataclass
class EvalResult:
    """What an evaluation measured: the dataset-wide confusion matrix and the metrics from it."""

    hist: np.ndarray  # (K, K) int64, rows ground truth, columns prediction
    scores: Scores
    num_images: int
    seconds: float


def evaluate(model: Model, dataset: Iterable[Sample], num_classes: int = 21, *,
             mean_bgr: Sequence[float] = VOC_MEAN_BGR, device: str | torch.device | None = None,
             batch_size: int = 1, output: str | None = None, save_dir: str | Path | None = None,
             progress: bool = False) -> EvalResult:
    """Run ``model`` over ``dataset`` and score it with one confusion matrix for the whole set.

    ``model`` maps a (N, 3, H, W) Caffe-style input to scores (N, K, H, W), or a dict of blobs
    (``output`` names the one to use; default ``'score'`` or the only one). Consecutive images of
    equal size are batched up to ``batch_size``; on CUDA, TF32 is switched off for the run so
    results match full float32 math. ``save_dir`` receives each prediction as a palette PNG.
    """
    if save_dir is not None:
        Path(save_dir).mkdir(parents=True, exist_ok=True)
    if device is not None and isinstance(model, torch.nn.Module):
        model = model.to(device)
    device = torch.device(device) if device is not None else _model_device(model)
    total = len(dataset) if isinstance(dataset, Sequence) else None
    bar = _Progress(total) if progress else None
    hist = np.zeros((num_classes, num_classes), dtype=np.int64)
    count = 0
    start = time.perf_counter()
    with _full_fp32(device):
        for batch in _equal_size_batches(dataset, batch_size):
            inputs = torch.stack([caffe_input(s.image, mean_bgr) for s in batch]).to(device)
            predictions = predict_batch(model, inputs, output, num_classes).cpu().numpy()
            for sample, prediction in zip(batch, predictions):
                hist += fast_hist(sample.label, prediction, num_classes)
                if save_dir is not None:
                    save_label_png(prediction.astype(np.uint8), Path(save_dir) / f"{sample.id}.png")
            count += len(batch)
            if bar:
                bar.update(count)
    if bar:
        bar.finish()
    return EvalResult(hist, scores(hist), count, time.perf_counter() - start)


def evaluate_sharded(model: Model, dataset: VOCSegmentation, rank: int, world: int, num_classes: int = 21,
                     **options: Any) -> EvalResult:
    """This rank's share of ``dataset`` (ids rank, rank + world, ...) scored, then the confusion
    matrices and image counts summed over ranks (in a process group; ``world`` 1: the whole set)."""
    dataset.ids = dataset.ids[rank::world]
    result = evaluate(model, dataset, num_classes, **options)
    if world == 1:
        return result
    hist = sum_array(result.hist)
    count = int(sum_array(np.array([result.num_images], dtype=np.int64))[0])
    return EvalResult(hist, scores(hist), count, result.seconds)


def _model_device(model: Model) -> torch.device:
    if isinstance(model, torch.nn.Module):
        for tensor in model.parameters():
            return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def _full_fp32(device: torch.device) -> Iterator[None]:
    """Switch TF32 off on CUDA for the duration (it shifts scores; see fcn-facts 'Numerics')."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _equal_size_batches(samples: Iterable[Sample], batch_size: int) -> Iterator[list[Sample]]:
    """Runs of consecutive samples of one image size, at most ``batch_size`` long (no padding:
    padding would change an FCN's output at the borders)."""
    batch: list[Sample] = []
    for sample in samples:
        if batch and (len(batch) >= batch_size or batch[0].image.size != sample.image.size):
            yield batch
            batch = []
        batch.append(sample)
    if batch:
        yield batch


class _Progress:
    """A dependency-free progress line on stderr: redrawn in place on a terminal, every 10% in logs."""

    def __init__(self, total: int | None, stream: TextIO | None = None) -> None:
        self.total, self.stream = total, stream if stream is not None else sys.stderr
        self.start = time.perf_counter()
        self.tty = self.stream.isatty()
        self.last_drawn = 0.0
        self.last_decile = -1

    def update(self, done: int) -> None:
        now = time.perf_counter()
        rate = done / max(now - self.start, 1e-9)
        if self.total:
            filled = int(30 * done / self.total)
            eta = (self.total - done) / rate if rate else 0.0
            text = f"[{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total} {rate:.2f} img/s eta {eta:.0f}s"
            decile = 10 * done // self.total
        else:
            text, decile = f"{done} images {rate:.2f} img/s", done // 100
        if self.tty and (now - self.last_drawn > 0.1 or done == self.total):
            self.stream.write("\r" + text)
            self.last_drawn = now
        elif not self.tty and decile != self.last_decile:
            self.stream.write(text + "\n")
            self.last_decile = decile
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


# ---------------------------------------------------------------------------------------- report

_METRICS = (("pixel acc", "pixel_acc"), ("mean acc", "mean_acc"), ("mean IU", "mean_iu"),
            ("f.w. IU", "fw_iu"))


def class_names(num_classes: int) -> list[str]:
    """VOC's names for 21 classes, else the indices as text."""
    return list(VOC_CLASSES) if num_classes == len(VOC_CLASSES) else [str(i) for i in range(num_classes)]


def format_report(result: EvalResult, published: Sequence[Published], names: Sequence[str]) -> str:
    """Per-class IU, then the four metrics in percent with each published row and our difference."""
    lines = [f"{'class':<14}{'IU %':>8}"]
    for name, iu in zip(names, result.scores.class_iu):
        lines.append(f"{name:<14}{'n/a' if np.isnan(iu) else f'{100 * iu:.2f}':>8}")
    header = f"\n{'metric':<12}{'ours':>8}" + "".join(f"{f'[{i + 1}]':>9}{'diff':>8}"
                                                      for i in range(len(published)))
    lines.append(header)
    for label, field in _METRICS:
        ours = 100 * getattr(result.scores, field)
        row = f"{label:<12}{ours:>8.2f}"
        for entry in published:
            theirs = getattr(entry, field)
            row += f"{'-':>9}{'':>8}" if theirs is None else f"{theirs:>9.2f}{ours - theirs:>+8.2f}"
        lines.append(row)
    for i, entry in enumerate(published):
        lines.append(f"[{i + 1}] {entry.model}, {entry.image_set}: {entry.source}")
    return "\n".join(lines)


def save_confusion_png(hist: np.ndarray, path: str | Path, cell: int = 16) -> None:
    """The row-normalized confusion matrix as a picture: dark = most of that class's pixels."""
    hist = np.asarray(hist, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        fractions = np.nan_to_num(hist / hist.sum(axis=1, keepdims=True))
    shade = (255 * (1 - fractions)).round().astype(np.uint8)
    picture = np.stack([shade, shade, np.full_like(shade, 255)], axis=-1)  # white -> blue
    Image.fromarray(picture).resize((cell * hist.shape[1], cell * hist.shape[0]),
                                    Image.NEAREST).save(path)


# ------------------------------------------------------------------------------------------- CLI

def load_weights(path: str | Path) -> torch.nn.Module:
    """A converted ``.pth`` as a model in eval mode (``fcn_ref.load``)."""
    return load(path)


def source_file(path: str | Path) -> str | None:
    """The original caffemodel file name a converted ``.pth`` records, if it records one."""
    if not Path(path).is_file():  # a pipe or a device is never opened by torch.load
        return None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - not our format: no name to look up; loading will say why
        return None
    source = checkpoint.get("source") if isinstance(checkpoint, dict) else None
    return source.get("file") if isinstance(source, dict) else None


class EvaluateError(CaffeFormatError):
    """A dataset folder, split or output path that ``evaluate`` cannot use (one line naming it)."""


def check_paths(args: argparse.Namespace) -> None:
    """Refuse, before any image is scored, a dataset folder that is not VOC or an output that
    could not be written (an hour-long run should not end in a traceback)."""
    root = Path(args.voc_root)
    if not root.is_dir():
        raise EvaluateError("no such folder (--voc-root takes a VOC year folder, e.g. VOCdevkit/VOC2012)",
                            path=str(root))
    missing = [d + "/" for d in ("JPEGImages", "SegmentationClass") if not (root / d).is_dir()]
    if missing:
        raise EvaluateError(f"not a VOC year folder (no {' or '.join(missing)})", path=str(root))
    for out in (args.json, args.confusion):
        if out is not None and (Path(out).is_dir() or not Path(out).parent.is_dir()):
            raise EvaluateError("output folder does not exist" if not Path(out).is_dir() else "is a directory",
                                path=str(out))
    if args.save_dir is not None:
        save_dir = Path(args.save_dir)
        if save_dir.exists() and not save_dir.is_dir():
            raise EvaluateError("--save-dir exists and is not a folder", path=str(save_dir))
        if not save_dir.exists() and not save_dir.parent.is_dir():
            raise EvaluateError("--save-dir's parent folder does not exist", path=str(save_dir))


def checked_dataset(args: argparse.Namespace) -> VOCSegmentation:
    """The split's images, every one of which has its picture and its label on disk."""
    root = Path(args.voc_root)
    try:
        dataset = VOCSegmentation(root, args.split)
    except (FileNotFoundError, ValueError) as e:
        raise EvaluateError(str(e).splitlines()[0], path=str(root)) from None
    lost = [p for i in dataset.ids for p in (root / "JPEGImages" / f"{i}.jpg", root / "SegmentationClass" / f"{i}.png")
            if not p.is_file()]
    if lost:
        raise EvaluateError(f"{len(lost)} files of split '{args.split}' are missing, e.g. {lost[0]}", path=str(root))
    return dataset


def _image_set(ids: Sequence[str], split: str) -> str:
    """'seg11valid' when the ids are exactly that list (whatever it was called), else the name."""
    return "seg11valid" if sorted(ids) == sorted(seg11valid_ids()) else split


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fcn_ref.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--weights", required=True, help="converted model (.pth)")
    parser.add_argument("--voc-root", required=True, help="VOC year folder, e.g. VOCdevkit/VOC2012")
    parser.add_argument("--split", default="seg11valid",
                        help="ImageSets/Segmentation name, 'seg11valid' (packaged), or an id-list path")
    parser.add_argument("--save-dir", help="write each prediction as a palette PNG here")
    parser.add_argument("--json", help="write metrics, published rows and confusion matrix here")
    parser.add_argument("--confusion", help="write a picture of the confusion matrix (PNG)")
    parser.add_argument("--published", help="caffemodel file name or model name to compare with "
                        "(default: the .pth's source file; 'none' to skip)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=1, help="equal-sized images per forward")
    parser.add_argument("--output", help="name of the score blob if the model returns several")
    parser.add_argument("--limit", type=int, help="score only the first N images (a quick look)")
    parser.add_argument("--num-classes", type=int, default=VOCSegmentation.num_classes,
                        help="classes the model scores and the labels use (default: VOC's 21; "
                             "label values outside [0, N) are not scored, as 255 is not)")
    parser.add_argument("--exact", action="store_true",
                        help="no fast paths: every layer exactly as F.conv2d computes it (slower)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None,
         load_model: Callable[[str], Any] = load_weights) -> int:
    """The CLI; ``load_model`` is a seam for tests that bring their own model."""
    args = _parse_args(argv)
    try:
        return run(args, load_model)
    except (CaffeFormatError, DeviceError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a picture that vanished or cannot be read mid-run, a full disk
        print(f"error: {e.filename or args.voc_root}: {e.strerror or e}", file=sys.stderr)
        return 1
    finally:
        shutdown()


def run(args: argparse.Namespace, load_model: Callable[[str], Any] = load_weights) -> int:
    """Check every path, load the model, score, report (``main`` prints errors as one line)."""
    check_paths(args)
    if args.num_classes < 1:
        raise EvaluateError(f"--num-classes must be at least 1, not {args.num_classes}", path=str(args.weights))
    pick_device(args.device)  # a missing GPU is one line before any work
    dataset = checked_dataset(args)
    image_set = _image_set(dataset.ids, args.split)
    if args.limit is not None:
        dataset.ids = dataset.ids[:args.limit]
        image_set = f"first {args.limit} of {image_set}"
    model = load_model(args.weights)
    key = args.published or source_file(args.weights)
    published = [] if key in (None, "none") else lookup(key, image_set)
    if args.exact:
        set_exact(model)
    rank, world = init_from_env(args.device)
    device = args.device
    if world > 1 and torch.device(device).type == "cuda":
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    try:
        result = evaluate_sharded(model, dataset, rank, world, args.num_classes, device=device,
                                  batch_size=args.batch_size, output=args.output, save_dir=args.save_dir,
                                  progress=rank == 0)
    except ScoresError as e:
        hint = "; --num-classes sets the dataset's" if "classes, the dataset has" in str(e) else ""
        raise EvaluateError(f"{e}{hint}", path=str(args.weights)) from None
    if rank != 0:
        return 0
    names = class_names(args.num_classes)
    print(f"{args.weights}: {result.num_images} images of {image_set} in {result.seconds:.1f} s")
    print(format_report(result, published, names))
    if key not in (None, "none") and not published:
        print(f"no published numbers for {key} on {image_set}")
    if args.confusion:
        save_confusion_png(result.hist, args.confusion)
    if args.json:
        report = {"weights": str(args.weights), "split": args.split, "image_set": image_set,
                  "num_images": result.num_images, "seconds": result.seconds,
                  "class_names": names, **result.scores.as_dict(),
                  "published": [asdict(p) for p in published],
                  "confusion": result.hist.tolist()}
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
