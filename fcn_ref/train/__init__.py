"""Train FCNs in PyTorch exactly as Caffe's solvers do (SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam).

``python -m fcn_ref.train solver.prototxt`` runs a Caffe solver file; from Python,
``Solver(net, data, solver_param, specs=...)`` trains any ``nn.Module`` returning its loss blobs
from any ``DataSource``. See ``solver`` (the loop), ``sgd`` (the update), ``update_rules`` (the
other solver types), ``lr_policy``, ``data`` (sources), ``caffe_net`` (Caffe nets from solver
files), ``progress`` (bar, log, plot).
"""
from fcn_ref.train.config import parse_solver_text, read_solver
from fcn_ref.train.data import DATA_LAYER_SOURCES, DataSource, Feeder, HDF5Source, ShardedSource
from fcn_ref.train.loss_sampling import LossSampling
from fcn_ref.train.lr_policy import LearningRate
from fcn_ref.train import python_layers  # registers the reference repo's Python data layers
from fcn_ref.train.sgd import CaffeSGD
from fcn_ref.train.solver import IterationRecord, Solver, SolverEvents

__all__ = ["CaffeSGD", "DATA_LAYER_SOURCES", "DataSource", "Feeder", "HDF5Source", "IterationRecord",
           "LearningRate", "ShardedSource", "Solver", "SolverEvents", "parse_solver_text", "read_solver"]
