#!/usr/bin/env bash
# Regenerate every fixture from real Caffe (build it first: tools/caffe/build.sh). About 5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/caffe/python3 tools/caffe/dump_schema.py tests/fixtures/caffe-proto.json   # schema field numbers
tools/caffe/python3 tools/caffe/make_fixtures.py                                  # zoo, classifiers, V1, layer nets
tools/caffe/python3 tools/caffe/make_surgery_fixture.py                           # Caffe's own net surgery
python3 tools/make_trained_fixture.py                                             # train in Caffe, score there
tools/caffe/python3 tools/caffe/make_train_fixtures.py                           # SGDSolver step fixtures (train/)
tools/caffe/python3 tools/caffe/make_solver_fixtures.py                          # other solver types (train-solvers/)
python3 tools/make_staged_fixture.py                                              # staged 32s-16s-8s in Caffe + its nudged rerun (train/staged-synthetic)
cp tests/fixtures/voc-fcn8s/net.caffemodel fcn_ref/demo/fcn8s-tiny.caffemodel     # the README's demo model
git status --short tests/fixtures fcn_ref/demo
