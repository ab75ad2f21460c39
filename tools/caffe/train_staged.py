"""Staged FCN training in real Caffe: 32s, then 16s from it, then 8s from that, on a synthetic set.

    tools/caffe/python3 tools/caffe/train_staged.py --work DIR --out FIXTURE_DIR

Caffe side of tools/make_staged_fixture.py (the command to run; it draws the synthetic VOC-format
set and writes DIR/train.h5, DIR/val_inputs.h5, DIR/val_labels.h5 as tools/make_trained_fixture.py
does). This is the end-to-end oracle for the trainer (issue 11): the paper's staged recipe, each
stage a real `caffe.SGDSolver`:
  pretrain  (stands in for VGG16's ImageNet weights; not compared, its result is fcn32s's init)
          the FCN-8s net from He-initialized weights (train_synthetic.initialize), trained with the
          CVPR-era form (normalized loss, momentum 0.9) so that the trunk's features separate the
          classes; only its trunk (conv1_1 .. fc7) is kept;
  fcn32s  the pretrained trunk, score_fr zero (as R's surgery leaves it), upscore bilinear frozen;
  fcn16s  copy_from fcn32s's final weights by layer name, score_pool4 zero (Caffe's default filler),
          upscore2/upscore16 bilinear frozen;
  fcn8s   copy_from fcn16s's final weights, score_pool3 zero, deconvs bilinear frozen.
Every compared stage has the heavy recipe: HDF5Data batch 1 (train.h5, rows in order,
wrap-around), SoftmaxWithLoss ignore 255 normalize false, fixed lr, momentum 0.99, weight decay
5e-4, Dropout ratio 0 (Caffe's masks cannot be replayed); the lr is halved after FCN-32s (R's
solvers lower it per stage too: 1e-10, 1e-12, 1e-14).

Why fine-tuning from a pretrained trunk and these lrs (measured with staged_sensitivity.py): from a
He-initialized trunk this training is chaotic (a one-ulp nudge of one initial blob moved Caffe's
own final mean IU by 4-6 points and a quarter of its pixels), because the trunk's ReLU and max-pool
switches flip and its gradients jump. From a trunk that already separates the classes, at lrs
where the trunk barely moves, the zero-initialized score layers learn a nearly convex problem and
Caffe's nudged rerun stays on its own predictions (staged.json ``caffe_self_sensitivity``).

After each stage Caffe predicts every val image at its native size with the deploy net, and the
scores come from train_synthetic's numpy code (one confusion matrix, void dropped, nanmeans as
score.py).

Writes FIXTURE_DIR/<stage>/: solver.prototxt, train.prototxt, train.txt, deploy.prototxt,
init.caffemodel, losses.npy, predictions.h5, metrics.json; FIXTURE_DIR/fcn8s/final.caffemodel.
A stage's final weights are the next stage's init.caffemodel for every layer they share (the
deconvs are fixed), so only the last stage stores its final weights.
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

import nets  # noqa: E402
import train_synthetic as ts  # noqa: E402
from oracle import CAFFE_COMMIT, CAFFE_SOURCE, solver_text  # noqa: E402

NUM_CLASSES = 4  # background + the 3 classes the synthetic set draws
WIDTHS = (4, 8, 8, 16, 16)
FC = 16
INPUT_SIZE = 128  # deploy.prototxt's Input shape (reshaped to each val image when predicting)
SOURCE = "train.txt"
TRAIN_H5 = "train.h5"  # not stored (about 20 MB): make_staged_fixture.py --data-only writes it
SEED = 11
# stage -> (iterations, base lr, new zero-initialized score layer)
STAGES = {
    "fcn32s": (150, 1e-8, "score_fr"),
    "fcn16s": (100, 5e-9, "score_pool4"),
    "fcn8s": (100, 5e-9, "score_pool3"),
}
# The pretraining that stands in for ImageNet (its net, iterations, lr, momentum; normalized loss).
PRETRAIN = {"net": "fcn8s", "iterations": 800, "base_lr": 3e-3, "momentum": 0.9, "normalize": True}
PARENT = {"fcn16s": "fcn32s", "fcn8s": "fcn16s"}
STRIDE = {"fcn32s": 32, "fcn16s": 16, "fcn8s": 8}


def train_net(stage: str, normalize: bool = False):
    n = caffe.NetSpec()
    n.data, n.label = L.HDF5Data(source=SOURCE, batch_size=1, ntop=2)
    top = nets.vgg_trunk(n, n.data, widths=WIDTHS, fc=FC)
    nets.fcn_head(n, top, NUM_CLASSES, STRIDE[stage])
    n.loss = L.SoftmaxWithLoss(n.score, n.label, loss_param=dict(ignore_label=ts.VOID, normalize=normalize))
    proto = nets.named(n, f"{stage}-synthetic-train")
    for layer in proto.layer:
        if layer.type == "Dropout":
            layer.dropout_param.dropout_ratio = 0.0
    return proto


def deploy_net(stage: str):
    n = caffe.NetSpec()
    n.data = nets.data_input(1, 3, INPUT_SIZE, INPUT_SIZE)
    top = nets.vgg_trunk(n, n.data, widths=WIDTHS, fc=FC)
    nets.fcn_head(n, top, NUM_CLASSES, STRIDE[stage])
    proto = nets.named(n, f"{stage}-synthetic")
    kept = [layer for layer in proto.layer if layer.type != "Dropout"]  # in place: no rewiring
    del proto.layer[:]
    proto.layer.extend(kept)
    return proto


def solver_fields(iters: int, lr: float, momentum: float = 0.99) -> dict:
    return dict(train_net="train.prototxt", type="SGD", display=1, average_loss=1, lr_policy="fixed",
                base_lr=lr, momentum=momentum, iter_size=1, max_iter=iters, weight_decay=0.0005, snapshot=0,
                snapshot_after_train=False, random_seed=SEED, solver_mode="CPU")


def bilinear_deconvs(net, proto) -> list[str]:
    names = [l.name for l in proto.layer if l.type == "Deconvolution"]
    for name in names:
        blob = net.params[name][0]
        blob.data[...] = nets.bilinear_diagonal([blob.data.shape], None)[0]
    return names


def pretrain(work: str) -> tuple[str, list[float]]:
    """PRETRAIN in work/pretrain (not part of the fixture); returns its weights file and losses."""
    folder = os.path.join(work, "pretrain")
    os.makedirs(folder, exist_ok=True)
    proto = train_net(PRETRAIN["net"], normalize=PRETRAIN["normalize"])
    with open(os.path.join(folder, "train.prototxt"), "w") as f:
        f.write(str(proto))
    with open(os.path.join(folder, "solver.prototxt"), "w") as f:
        f.write(solver_text(solver_fields(PRETRAIN["iterations"], PRETRAIN["base_lr"], PRETRAIN["momentum"])))
    with open(os.path.join(folder, SOURCE), "w") as f:
        f.write(os.path.join(work, TRAIN_H5) + "\n")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        solver = caffe.SGDSolver("solver.prototxt")
        ts.initialize(solver.net, proto, SEED)
        losses = []
        for _ in range(PRETRAIN["iterations"]):
            solver.step(1)
            losses.append(float(solver.net.blobs["loss"].data))
        solver.net.save("final.caffemodel")
    finally:
        os.chdir(cwd)
    return os.path.join(folder, "final.caffemodel"), losses


def run_stage(stage: str, out: str, work: str, pretrained: str) -> dict:
    """Train one stage in out/<stage> (cwd, relative names as a user's solve.py would have)."""
    folder = os.path.join(out, stage)
    os.makedirs(folder, exist_ok=True)
    iters, lr, new_layer = STAGES[stage]
    proto = train_net(stage)
    with open(os.path.join(folder, "train.prototxt"), "w") as f:
        f.write(str(proto))
    with open(os.path.join(folder, "deploy.prototxt"), "w") as f:
        f.write(str(deploy_net(stage)))
    with open(os.path.join(folder, "solver.prototxt"), "w") as f:
        f.write(solver_text(solver_fields(iters, lr)))
    with open(os.path.join(folder, SOURCE), "w") as f:
        f.write(TRAIN_H5 + "\n")
    link = os.path.join(folder, TRAIN_H5)
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(os.path.join(work, TRAIN_H5), link)  # removed again below: never part of the fixture

    cwd = os.getcwd()
    os.chdir(folder)
    try:
        solver = caffe.SGDSolver("solver.prototxt")
        net = solver.net
        if stage in PARENT:
            net.copy_from(os.path.join("..", PARENT[stage], "final.caffemodel"))
            bilinear_deconvs(net, proto)
        else:
            ts.initialize(net, proto, SEED)
            net.copy_from(pretrained)  # the trunk, and the pretraining's score_fr: zeroed again
            for blob in net.params[new_layer]:
                blob.data[...] = 0
        assert not any(np.any(b.data) for b in net.params[new_layer]), f"{new_layer} not zero"
        net.save("init.caffemodel")
        losses, start = [], time.time()
        for it in range(iters):
            solver.step(1)
            loss = float(net.blobs["loss"].data)
            if not np.isfinite(loss):
                raise SystemExit(f"{stage}: loss {loss} at iteration {it}: lower its lr")
            losses.append(loss)
        seconds = time.time() - start
        net.save("final.caffemodel")
        np.save("losses.npy", np.array(losses, np.float64))
    finally:
        os.remove(link)
        os.chdir(cwd)

    ids, predictions, gaps, near_ties = ts.predict(os.path.join(folder, "deploy.prototxt"),
                                                   os.path.join(folder, "final.caffemodel"), work)
    hist = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    with h5py.File(os.path.join(work, "val_labels.h5"), "r") as labels:
        for image_id in ids:
            hist += ts.confusion(labels[image_id][...], predictions[image_id], NUM_CLASSES)
    write_predictions(os.path.join(folder, "predictions.h5"), ids, predictions)
    result = ts.metrics(hist)
    report = {
        **{k: result[k] for k in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu")},
        **ts.chance_levels(hist),
        "class_iu": result["class_iu"],
        "hist": hist.tolist(),
        "ids": ids,
        "min_top2_gap": min(gaps.values()),
        f"pixels_with_top2_gap_below_{ts.NEAR_TIE:g}": near_ties,
        "iterations": iters,
        "base_lr": lr,
        "loss_first_last_20": [float(np.mean(losses[:20])), float(np.mean(losses[-20:]))],
        "parent": PARENT.get(stage),
        "new_zero_layer": new_layer,
    }
    with open(os.path.join(folder, "metrics.json"), "w") as f:  # no timings: reruns are byte-identical
        json.dump(report, f, indent=1)
        f.write("\n")
    return dict(report, train_seconds=seconds)


def write_predictions(path: str, ids: list[str], predictions: dict) -> None:
    """Caffe's argmax per val id (uint8, gzip), without timestamps: reruns are byte-identical."""
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    with h5py.File(h5py.h5f.create(path.encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl)) as f:
        f.attrs["ids"] = np.array(ids, dtype=h5py.string_dtype())
        f.attrs["caffe_commit"] = CAFFE_COMMIT
        for image_id in ids:
            f.create_dataset(image_id, data=predictions[image_id], compression="gzip", compression_opts=9,
                             track_times=False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", required=True, help="folder with train.h5, val_inputs.h5, val_labels.h5")
    parser.add_argument("--out", required=True, help="fixture folder to write")
    args = parser.parse_args(argv)
    work, out = os.path.abspath(args.work), os.path.abspath(args.out)
    caffe.set_mode_cpu()
    pretrained, pretrain_losses = pretrain(work)
    print(f"pretrain: loss {np.mean(pretrain_losses[:20]):.3f} -> {np.mean(pretrain_losses[-20:]):.3f}", flush=True)
    reports = {}
    for stage in STAGES:
        reports[stage] = run_stage(stage, out, work, pretrained)
        r = reports[stage]
        print(f"{stage}: loss {r['loss_first_last_20'][0]:.1f} -> {r['loss_first_last_20'][1]:.1f}, mean IU "
              f"{r['mean_iu']:.4f} (chance {r['chance_mean_iu']:.4f}), {r['train_seconds']:.0f} s", flush=True)
    for stage in ("fcn32s", "fcn16s"):  # their final weights live on in the next stage's init
        os.remove(os.path.join(out, stage, "final.caffemodel"))
    summary = {"stages": list(STAGES), "num_classes": NUM_CLASSES, "widths": list(WIDTHS), "fc": FC,
               "caffe": f"BVLC {CAFFE_COMMIT} (brocolli-caffe 9.0.2)", "caffe_source": CAFFE_SOURCE,
               "pretrain": dict(PRETRAIN, seed=SEED, init="train_synthetic.initialize (He, conv1_1 x0.01)",
                                loss_first_last_20=[float(np.mean(pretrain_losses[:20])),
                                                    float(np.mean(pretrain_losses[-20:]))]),
               "final_mean_iu": reports["fcn8s"]["mean_iu"],
               "mean_iu": {s: r["mean_iu"] for s, r in reports.items()}}
    with open(os.path.join(out, "staged.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
