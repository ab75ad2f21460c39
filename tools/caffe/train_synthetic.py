"""Train a reduced-width FCN-8s in real Caffe on a synthetic set, then predict and score its val split.

    tools/caffe/python3 tools/caffe/train_synthetic.py --work DIR --out FIXTURE_DIR [--iters N]

Caffe side of tools/make_trained_fixture.py (which prepares DIR and is the command to run). DIR
holds what the project python wrote, because this interpreter has no PIL:
  train.h5         data (N,3,H,W) float32 preprocessed images, label (N,1,H,W) float32
  val_inputs.h5    one float32 (3,H,W) dataset per val id (native sizes), attr ``ids`` = split order
  val_labels.h5    one uint8 (H,W) dataset per val id

The net is R's voc-fcn8s/net.py at reduced width (nets.vgg_trunk + nets.fcn8s_head): HDF5Data in
place of the Python data layer, SoftmaxWithLoss{ignore_label 255, normalize false}, deconvs
bilinear on the diagonal and frozen (surgery.interp). The solver has the reference solver's form
(fixed lr, momentum, weight decay 5e-4, batch 1, average_loss 20); only the lr differs, because
the trunk starts from scratch (He init) instead of VGG weights. After training, the deploy net
(Input, no dropout, no loss) is reshaped to each val image, and its argmax is scored with the
numpy code below: one confusion matrix for the whole split, void dropped, nanmeans (score.py).
This is the independent reference the converted model has to reproduce.

Writes into FIXTURE_DIR: deploy.prototxt, net.caffemodel, caffe_predictions.h5, caffe_metrics.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import caffe  # noqa: E402
import h5py  # noqa: E402
import numpy as np  # noqa: E402
from caffe import layers as L  # noqa: E402
from caffe.proto import caffe_pb2  # noqa: E402

import nets  # noqa: E402
from oracle import CAFFE_COMMIT, CAFFE_SOURCE, solver_text  # noqa: E402

NUM_CLASSES = 21  # VOC's label space; only a few classes occur in the synthetic data
# VGG16's 64/128/256/512/512 and fc 4096, cut by 16 and 128 (fc6 holds 49*32*fc weights; the
# three frozen deconvs, 21x21 kernels each, are most of the rest). Pinned here rather than taken
# from nets.py's defaults so that regenerating this fixture gives the same net.
WIDTHS = (4, 8, 16, 32, 32)
FC = 32
VOID = 255
NEAR_TIE = 1e-3  # a top-2 score gap this small could flip under float32 reordering


# ----------------------------------------------------------------------------- nets and solver

def fcn8s_train(source_list: str) -> caffe_pb2.NetParameter:
    """R voc-fcn8s train net at reduced width, fed by HDF5Data (batch 1, as the reference)."""
    n = caffe.NetSpec()
    n.data, n.label = L.HDF5Data(source=source_list, batch_size=1, ntop=2)
    top = nets.vgg_trunk(n, n.data, widths=WIDTHS, fc=FC)
    nets.fcn8s_head(n, top, NUM_CLASSES)
    n.loss = L.SoftmaxWithLoss(n.score, n.label, loss_param=dict(ignore_label=VOID, normalize=False))
    return nets.named(n, "fcn8s-synthetic-train")


def fcn8s_deploy(height: int = 64, width: int = 64) -> caffe_pb2.NetParameter:
    """The same net as R's deploy.prototxt has it: Input data, no dropout, no loss, top ``score``."""
    n = caffe.NetSpec()
    n.data = nets.data_input(1, 3, height, width)
    top = nets.vgg_trunk(n, n.data, widths=WIDTHS, fc=FC)
    nets.fcn8s_head(n, top, NUM_CLASSES)
    proto = nets.named(n, "fcn8s-synthetic")
    kept = [layer for layer in proto.layer if layer.type != "Dropout"]  # in place, so no rewiring
    del proto.layer[:]
    proto.layer.extend(kept)
    return proto


def solver_fields(train_net: str, lr: float, momentum: float, iters: int, seed: int) -> dict:
    """The reference solver.prototxt's fields (no test net: we score after training ourselves)."""
    return dict(train_net=train_net, display=0, average_loss=20, lr_policy="fixed", base_lr=lr,
                momentum=momentum, iter_size=1, max_iter=iters, weight_decay=0.0005, snapshot=0,
                test_initialization=False, random_seed=seed, solver_mode="CPU")


# conv1_1 sees raw mean-subtracted pixels (about +-128, no /255 in the reference). Its He weights
# are scaled down by this much so every activation is O(1); otherwise the score layers' effective
# step is ~1e4 times the trunk's and no single lr trains the net from scratch.
FIRST_LAYER_GAIN = 0.01


def initialize(net, proto: caffe_pb2.NetParameter, seed: int) -> None:
    """Trunk: He-gaussian weights (conv1_1 times FIRST_LAYER_GAIN), zero biases. Score layers:
    zero (as in R, where they are not transplanted). Deconvs: bilinear on the diagonal
    (surgery.interp), kept by lr_mult 0."""
    rng = np.random.RandomState(seed)
    types = {layer.name: layer.type for layer in proto.layer}
    for name, blobs in net.params.items():
        if types[name] == "Deconvolution":
            blobs[0].data[...] = nets.bilinear_diagonal([blobs[0].data.shape], rng)[0]
            continue
        weight = blobs[0].data
        if name.startswith("score"):
            weight[...] = 0
        else:
            fan_in = int(np.prod(weight.shape[1:]))
            weight[...] = rng.normal(0.0, np.sqrt(2.0 / fan_in), weight.shape)
            if name == "conv1_1":
                weight *= FIRST_LAYER_GAIN
        for extra in blobs[1:]:
            extra.data[...] = 0


# ----------------------------------------------------------------------------- scoring

def confusion(gt: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    """Rows ground truth, columns prediction; pixels with gt outside [0, n) (void) are dropped."""
    keep = (gt >= 0) & (gt < n)
    return np.bincount(n * gt[keep].astype(np.int64) + pred[keep].astype(np.int64),
                       minlength=n * n).reshape(n, n)


def metrics(hist: np.ndarray) -> dict:
    """score.py's four numbers from a dataset-wide confusion matrix (NaN classes left out)."""
    hist = hist.astype(np.float64)
    diag = np.diag(hist)
    with np.errstate(divide="ignore", invalid="ignore"):
        class_acc = diag / hist.sum(1)
        iu = diag / (hist.sum(1) + hist.sum(0) - diag)
    freq = hist.sum(1) / hist.sum()
    return {
        "pixel_acc": float(diag.sum() / hist.sum()),
        "mean_acc": float(np.nanmean(class_acc)),
        "mean_iu": float(np.nanmean(iu)),
        "fw_iu": float((freq[freq > 0] * iu[freq > 0]).sum()),
        "class_iu": [None if np.isnan(v) else float(v) for v in iu],
    }


def chance_levels(hist: np.ndarray) -> dict:
    """Mean IU of label-blind predictors on this split, for comparison with the trained net:
    every pixel the most frequent class, or classes drawn at random with the ground-truth
    frequencies (expected confusion matrix rows * freq)."""
    gt_count = hist.sum(1).astype(np.float64)
    freq = gt_count / gt_count.sum()
    majority = np.zeros_like(hist, dtype=np.float64)
    majority[:, int(np.argmax(gt_count))] = gt_count
    prior = np.outer(gt_count, freq)
    levels = {"majority_class": metrics(majority)["mean_iu"],
              "random_with_class_frequencies": metrics(prior)["mean_iu"]}
    levels["chance_mean_iu"] = max(levels.values())
    return levels


# ----------------------------------------------------------------------------- main steps

def train(work: str, iters: int, lr: float, momentum: float, seed: int, log_every: int):
    """Train from scratch; return the solver and the (iteration, smoothed loss) history.

    Runs inside ``work`` with relative file names, because Caffe keeps the HDF5Data source path
    in the saved caffemodel: this way the fixture does not record a temporary folder and a rerun
    gives the same bytes.
    """
    os.chdir(work)
    source_list, train_path, solver_path = "train_h5.txt", "train.prototxt", "solver.prototxt"
    with open(source_list, "w") as f:
        f.write("train.h5\n")
    train_proto = fcn8s_train(source_list)
    with open(train_path, "w") as f:
        f.write(str(train_proto))
    with open(solver_path, "w") as f:
        f.write(solver_text(solver_fields(train_path, lr, momentum, iters, seed)))
    caffe.set_mode_cpu()
    caffe.set_random_seed(seed)
    solver = caffe.SGDSolver(solver_path)
    initialize(solver.net, train_proto, seed)
    history = []
    losses = []
    start = time.time()
    while solver.iter < iters:
        solver.step(1)
        loss = float(solver.net.blobs["loss"].data)
        if not np.isfinite(loss):
            raise SystemExit(f"loss became {loss} at iteration {solver.iter}: lower --lr")
        losses.append(loss)
        if solver.iter % log_every == 0 or solver.iter == iters:
            smoothed = float(np.mean(losses[-20:]))
            history.append([solver.iter, smoothed])
            print(f"iter {solver.iter:5d}  loss(avg 20) {smoothed:10.2f}  {time.time() - start:6.1f} s",
                  flush=True)
    return solver, history, time.time() - start


def predict(deploy_path: str, weights: str, work: str) -> tuple[list[str], dict, dict, int]:
    """Caffe's label map for each val image at its native size, and the smallest top-2 score gap
    and how many pixels are near ties (how far the argmax is from a tie: a port must not flip any
    pixel, and a flip is only a fair failure when the gap is well above float32 rounding)."""
    net = caffe.Net(deploy_path, caffe.TEST, weights=weights)
    predictions, gaps, near_ties = {}, {}, 0
    with h5py.File(os.path.join(work, "val_inputs.h5"), "r") as inputs:
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in inputs.attrs["ids"]]
        for image_id in ids:
            image = inputs[image_id][...]
            net.blobs["data"].reshape(1, *image.shape)
            net.blobs["data"].data[0] = image
            score = net.forward()["score"][0]
            assert score.shape[1:] == image.shape[1:], (score.shape, image.shape)
            predictions[image_id] = score.argmax(0).astype(np.uint8)
            top2 = np.sort(score, axis=0)[-2:]
            gaps[image_id] = float((top2[1] - top2[0]).min())
            near_ties += int(((top2[1] - top2[0]) < NEAR_TIE).sum())
    return ids, predictions, gaps, near_ties


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", required=True, help="folder with train.h5, val_inputs.h5, val_labels.h5")
    parser.add_argument("--out", required=True, help="fixture folder to write")
    parser.add_argument("--iters", type=int, default=1500)
    parser.add_argument("--lr", type=float, default=1e-7)
    parser.add_argument("--momentum", type=float, default=0.99)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--log-every", type=int, default=50)
    args = parser.parse_args(argv)
    args.work, args.out = os.path.abspath(args.work), os.path.abspath(args.out)
    os.makedirs(args.out, exist_ok=True)

    solver, history, seconds = train(args.work, args.iters, args.lr, args.momentum, args.seed,
                                     args.log_every)
    weights = os.path.join(args.out, "net.caffemodel")
    solver.net.save(weights)  # train-net layers; Caffe matches them to the deploy net by name
    deploy_path = os.path.join(args.out, "deploy.prototxt")
    with open(deploy_path, "w") as f:
        f.write(str(fcn8s_deploy()))

    ids, predictions, gaps, near_ties = predict(deploy_path, weights, args.work)
    hist = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    with h5py.File(os.path.join(args.work, "val_labels.h5"), "r") as labels:
        for image_id in ids:
            hist += confusion(labels[image_id][...], predictions[image_id], NUM_CLASSES)
    with h5py.File(os.path.join(args.out, "caffe_predictions.h5"), "w") as f:
        f.attrs["ids"] = np.array(ids, dtype=h5py.string_dtype())
        f.attrs["caffe_commit"] = CAFFE_COMMIT
        for image_id in ids:
            f.create_dataset(image_id, data=predictions[image_id], compression="gzip")

    result = metrics(hist)
    report = {
        **{k: result[k] for k in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu")},
        **chance_levels(hist),
        "class_iu": result["class_iu"],
        "hist": hist.tolist(),
        "num_images": len(ids),
        "ids": ids,
        "min_top2_gap": min(gaps.values()),
        f"pixels_with_top2_gap_below_{NEAR_TIE:g}": near_ties,
        "iterations": int(solver.iter),
        "final_loss": history[-1][1],
        "loss_history": history,
        "train_seconds": round(seconds, 1),
        "net": {"widths": list(WIDTHS), "fc": FC, "num_classes": NUM_CLASSES},
        "solver": {"base_lr": args.lr, "lr_policy": "fixed", "momentum": args.momentum,
                   "weight_decay": 0.0005, "batch_size": 1, "random_seed": args.seed,
                   "loss": "SoftmaxWithLoss ignore_label 255 normalize false (sum)"},
        "caffe": CAFFE_SOURCE,
    }
    with open(os.path.join(args.out, "caffe_metrics.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(f"mean IU {report['mean_iu']:.4f} (chance {report['chance_mean_iu']:.4f}), "
          f"pixel acc {report['pixel_acc']:.4f}, {report['iterations']} iterations in {seconds:.0f} s, "
          f"smallest top-2 gap {report['min_top2_gap']:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
