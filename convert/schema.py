"""Caffe's protobuf schema, the part of it we read, built at import time without protoc.

Caffe's format is protobuf (``src/caffe/proto/caffe.proto``). Rather than ship generated code, which
ties us to one protobuf release, we describe the messages here as data: one table row per field with
Caffe's exact field number, compiled into a private descriptor pool. That works with any protobuf we
declare and never collides with a real ``caffe_pb2`` imported in the same process.

The legacy V1 ``LayerType`` enum carries ``CROP = 40`` from the Caffe branch the CVPR models were
trained with (longjon/caffe ``future``); master Caffe lacks it. Field 13 of PoolingParameter is master
Caffe's ``round_mode`` enum (CEIL 0, FLOOR 1). Fork spellings of BVLC fields (``ceil_mode``) are
added from ``convert.fork_fields`` at private numbers so that text prototxts using them parse.
"""
from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from convert.fork_fields import schema_rows

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "double": _F.TYPE_DOUBLE, "float": _F.TYPE_FLOAT, "int64": _F.TYPE_INT64, "uint64": _F.TYPE_UINT64,
    "int32": _F.TYPE_INT32, "uint32": _F.TYPE_UINT32, "bool": _F.TYPE_BOOL, "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
}
PACKAGE = "fcnref.caffe"

# Enums: name -> [(value name, number)]. Nested enums are written "Message.Enum".
ENUMS: dict[str, list[tuple[str, int]]] = {
    "Phase": [("TRAIN", 0), ("TEST", 1)],
    "FillerParameter.VarianceNorm": [("FAN_IN", 0), ("FAN_OUT", 1), ("AVERAGE", 2)],
    "ParamSpec.DimCheckMode": [("STRICT", 0), ("PERMISSIVE", 1)],
    "LossParameter.NormalizationMode": [("FULL", 0), ("VALID", 1), ("BATCH_SIZE", 2), ("NONE", 3)],
    "ConvolutionParameter.Engine": [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)],
    "DataParameter.DB": [("LEVELDB", 0), ("LMDB", 1)],
    "EltwiseParameter.EltwiseOp": [("PROD", 0), ("SUM", 1), ("MAX", 2)],
    "LRNParameter.NormRegion": [("ACROSS_CHANNELS", 0), ("WITHIN_CHANNEL", 1)],
    "LRNParameter.Engine": [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)],
    "PoolingParameter.PoolMethod": [("MAX", 0), ("AVE", 1), ("STOCHASTIC", 2)],
    "PoolingParameter.Engine": [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)],
    "PoolingParameter.RoundMode": [("CEIL", 0), ("FLOOR", 1)],
    "ReductionParameter.ReductionOp": [("SUM", 1), ("ASUM", 2), ("SUMSQ", 3), ("MEAN", 4)],
    "ReLUParameter.Engine": [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)],
    "SPPParameter.PoolMethod": [("MAX", 0), ("AVE", 1), ("STOCHASTIC", 2)],
    "SPPParameter.Engine": [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)],
    "SigmoidParameter.Engine": [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)],
    "SoftmaxParameter.Engine": [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)],
    "TanHParameter.Engine": [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)],
    "V1LayerParameter.DimCheckMode": [("STRICT", 0), ("PERMISSIVE", 1)],
    "SolverParameter.SnapshotFormat": [("HDF5", 0), ("BINARYPROTO", 1)],
    "SolverParameter.SolverMode": [("CPU", 0), ("GPU", 1)],
    "SolverParameter.SolverType": [
        ("SGD", 0), ("NESTEROV", 1), ("ADAGRAD", 2), ("RMSPROP", 3), ("ADADELTA", 4), ("ADAM", 5),
    ],
    "V1LayerParameter.LayerType": [
        ("NONE", 0), ("ABSVAL", 35), ("ACCURACY", 1), ("ARGMAX", 30), ("BNLL", 2), ("CONCAT", 3),
        ("CONTRASTIVE_LOSS", 37), ("CONVOLUTION", 4), ("DATA", 5), ("DECONVOLUTION", 39),
        ("DROPOUT", 6), ("DUMMY_DATA", 32), ("EUCLIDEAN_LOSS", 7), ("ELTWISE", 25), ("EXP", 38),
        ("FLATTEN", 8), ("HDF5_DATA", 9), ("HDF5_OUTPUT", 10), ("HINGE_LOSS", 28), ("IM2COL", 11),
        ("IMAGE_DATA", 12), ("INFOGAIN_LOSS", 13), ("INNER_PRODUCT", 14), ("LRN", 15),
        ("MEMORY_DATA", 29), ("MULTINOMIAL_LOGISTIC_LOSS", 16), ("MVN", 34), ("POOLING", 17),
        ("POWER", 26), ("RELU", 18), ("SIGMOID", 19), ("SIGMOID_CROSS_ENTROPY_LOSS", 27),
        ("SILENCE", 36), ("SOFTMAX", 20), ("SOFTMAX_LOSS", 21), ("SPLIT", 22), ("SLICE", 33),
        ("TANH", 23), ("WINDOW_DATA", 24), ("THRESHOLD", 31), ("CROP", 40),
    ],
}

# Messages: name -> [(field, number, type, label, default)]; label "opt", "rep" or "packed".
_ENGINE = ("engine",)
MESSAGES: dict[str, list[tuple]] = {
    "BlobShape": [("dim", 1, "int64", "packed", None)],
    "BlobProto": [
        ("num", 1, "int32", "opt", 0), ("channels", 2, "int32", "opt", 0),
        ("height", 3, "int32", "opt", 0), ("width", 4, "int32", "opt", 0),
        ("data", 5, "float", "packed", None), ("diff", 6, "float", "packed", None),
        ("shape", 7, "BlobShape", "opt", None),
        ("double_data", 8, "double", "packed", None), ("double_diff", 9, "double", "packed", None),
    ],
    "BlobProtoVector": [("blobs", 1, "BlobProto", "rep", None)],
    "FillerParameter": [
        ("type", 1, "string", "opt", "constant"), ("value", 2, "float", "opt", 0.0),
        ("min", 3, "float", "opt", 0.0), ("max", 4, "float", "opt", 1.0),
        ("mean", 5, "float", "opt", 0.0), ("std", 6, "float", "opt", 1.0),
        ("sparse", 7, "int32", "opt", -1),
        ("variance_norm", 8, "FillerParameter.VarianceNorm", "opt", "FAN_IN"),
    ],
    "NetParameter": [
        ("name", 1, "string", "opt", None), ("layers", 2, "V1LayerParameter", "rep", None),
        ("input", 3, "string", "rep", None), ("input_dim", 4, "int32", "rep", None),
        ("force_backward", 5, "bool", "opt", False), ("state", 6, "NetState", "opt", None),
        ("debug_info", 7, "bool", "opt", False), ("input_shape", 8, "BlobShape", "rep", None),
        ("layer", 100, "LayerParameter", "rep", None),
    ],
    "NetState": [
        ("phase", 1, "Phase", "opt", "TEST"), ("level", 2, "int32", "opt", 0),
        ("stage", 3, "string", "rep", None),
    ],
    "NetStateRule": [
        ("phase", 1, "Phase", "opt", None), ("min_level", 2, "int32", "opt", None),
        ("max_level", 3, "int32", "opt", None), ("stage", 4, "string", "rep", None),
        ("not_stage", 5, "string", "rep", None),
    ],
    "ParamSpec": [
        ("name", 1, "string", "opt", None), ("share_mode", 2, "ParamSpec.DimCheckMode", "opt", None),
        ("lr_mult", 3, "float", "opt", 1.0), ("decay_mult", 4, "float", "opt", 1.0),
    ],
    "LayerParameter": [
        ("name", 1, "string", "opt", None), ("type", 2, "string", "opt", None),
        ("bottom", 3, "string", "rep", None), ("top", 4, "string", "rep", None),
        ("loss_weight", 5, "float", "rep", None), ("param", 6, "ParamSpec", "rep", None),
        ("blobs", 7, "BlobProto", "rep", None), ("include", 8, "NetStateRule", "rep", None),
        ("exclude", 9, "NetStateRule", "rep", None), ("phase", 10, "Phase", "opt", None),
        ("propagate_down", 11, "bool", "rep", None),
        ("transform_param", 100, "TransformationParameter", "opt", None),
        ("loss_param", 101, "LossParameter", "opt", None),
        ("accuracy_param", 102, "AccuracyParameter", "opt", None),
        ("argmax_param", 103, "ArgMaxParameter", "opt", None),
        ("concat_param", 104, "ConcatParameter", "opt", None),
        ("convolution_param", 106, "ConvolutionParameter", "opt", None),
        ("data_param", 107, "DataParameter", "opt", None),
        ("dropout_param", 108, "DropoutParameter", "opt", None),
        ("dummy_data_param", 109, "DummyDataParameter", "opt", None),
        ("eltwise_param", 110, "EltwiseParameter", "opt", None),
        ("exp_param", 111, "ExpParameter", "opt", None),
        ("hdf5_data_param", 112, "HDF5DataParameter", "opt", None),
        ("hdf5_output_param", 113, "HDF5OutputParameter", "opt", None),
        ("image_data_param", 115, "ImageDataParameter", "opt", None),
        ("inner_product_param", 117, "InnerProductParameter", "opt", None),
        ("lrn_param", 118, "LRNParameter", "opt", None),
        ("memory_data_param", 119, "MemoryDataParameter", "opt", None),
        ("pooling_param", 121, "PoolingParameter", "opt", None),
        ("power_param", 122, "PowerParameter", "opt", None),
        ("relu_param", 123, "ReLUParameter", "opt", None),
        ("sigmoid_param", 124, "SigmoidParameter", "opt", None),
        ("softmax_param", 125, "SoftmaxParameter", "opt", None),
        ("slice_param", 126, "SliceParameter", "opt", None),
        ("tanh_param", 127, "TanHParameter", "opt", None),
        ("threshold_param", 128, "ThresholdParameter", "opt", None),
        ("window_data_param", 129, "WindowDataParameter", "opt", None),
        ("python_param", 130, "PythonParameter", "opt", None),
        ("reshape_param", 133, "ReshapeParameter", "opt", None),
        ("flatten_param", 135, "FlattenParameter", "opt", None),
        ("reduction_param", 136, "ReductionParameter", "opt", None),
        ("batch_norm_param", 139, "BatchNormParameter", "opt", None),
        ("bias_param", 141, "BiasParameter", "opt", None),
        ("scale_param", 142, "ScaleParameter", "opt", None),
        ("input_param", 143, "InputParameter", "opt", None),
        ("crop_param", 144, "CropParameter", "opt", None),
        ("mvn_param", 120, "MVNParameter", "opt", None),
        ("prelu_param", 131, "PReLUParameter", "opt", None),
        ("spp_param", 132, "SPPParameter", "opt", None),
        ("log_param", 134, "LogParameter", "opt", None),
        ("embed_param", 137, "EmbedParameter", "opt", None),
        ("tile_param", 138, "TileParameter", "opt", None),
        ("elu_param", 140, "ELUParameter", "opt", None),
        ("parameter_param", 145, "ParameterParameter", "opt", None),
        ("recurrent_param", 146, "RecurrentParameter", "opt", None),
        ("swish_param", 147, "SwishParameter", "opt", None),  # BVLC only: not in the packaged fork
        ("clip_param", 148, "ClipParameter", "opt", None),  # BVLC only: not in the packaged fork
    ],
    "V0LayerParameter": [],  # pre-2014 nets; only its presence matters (we refuse them by name)
    "V1LayerParameter": [
        ("layer", 1, "V0LayerParameter", "opt", None),
        ("bottom", 2, "string", "rep", None), ("top", 3, "string", "rep", None),
        ("name", 4, "string", "opt", None), ("type", 5, "V1LayerParameter.LayerType", "opt", None),
        ("blobs", 6, "BlobProto", "rep", None), ("blobs_lr", 7, "float", "rep", None),
        ("weight_decay", 8, "float", "rep", None),
        ("concat_param", 9, "ConcatParameter", "opt", None),
        ("convolution_param", 10, "ConvolutionParameter", "opt", None),
        ("data_param", 11, "DataParameter", "opt", None),
        ("dropout_param", 12, "DropoutParameter", "opt", None),
        ("hdf5_data_param", 13, "HDF5DataParameter", "opt", None),
        ("hdf5_output_param", 14, "HDF5OutputParameter", "opt", None),
        ("image_data_param", 15, "ImageDataParameter", "opt", None),
        ("inner_product_param", 17, "InnerProductParameter", "opt", None),
        ("lrn_param", 18, "LRNParameter", "opt", None),
        ("pooling_param", 19, "PoolingParameter", "opt", None),
        ("window_data_param", 20, "WindowDataParameter", "opt", None),
        ("power_param", 21, "PowerParameter", "opt", None),
        ("memory_data_param", 22, "MemoryDataParameter", "opt", None),
        ("argmax_param", 23, "ArgMaxParameter", "opt", None),
        ("eltwise_param", 24, "EltwiseParameter", "opt", None),
        ("threshold_param", 25, "ThresholdParameter", "opt", None),
        ("dummy_data_param", 26, "DummyDataParameter", "opt", None),
        ("accuracy_param", 27, "AccuracyParameter", "opt", None),
        ("relu_param", 30, "ReLUParameter", "opt", None),
        ("mvn_param", 34, "MVNParameter", "opt", None),
        ("slice_param", 31, "SliceParameter", "opt", None),
        ("include", 32, "NetStateRule", "rep", None), ("exclude", 33, "NetStateRule", "rep", None),
        ("loss_weight", 35, "float", "rep", None),
        ("transform_param", 36, "TransformationParameter", "opt", None),
        ("tanh_param", 37, "TanHParameter", "opt", None),
        ("sigmoid_param", 38, "SigmoidParameter", "opt", None),
        ("softmax_param", 39, "SoftmaxParameter", "opt", None),
        ("exp_param", 41, "ExpParameter", "opt", None),
        ("loss_param", 42, "LossParameter", "opt", None),
        ("param", 1001, "string", "rep", None),
        ("blob_share_mode", 1002, "V1LayerParameter.DimCheckMode", "rep", None),
    ],
    "SolverParameter": [  # BVLC master's fields (the packaged fork adds SSD's eval_type, ap_version)
        ("net", 24, "string", "opt", None), ("net_param", 25, "NetParameter", "opt", None),
        ("train_net", 1, "string", "opt", None), ("test_net", 2, "string", "rep", None),
        ("train_net_param", 21, "NetParameter", "opt", None),
        ("test_net_param", 22, "NetParameter", "rep", None),
        ("train_state", 26, "NetState", "opt", None), ("test_state", 27, "NetState", "rep", None),
        ("test_iter", 3, "int32", "rep", None), ("test_interval", 4, "int32", "opt", 0),
        ("test_compute_loss", 19, "bool", "opt", False),
        ("test_initialization", 32, "bool", "opt", True),
        ("base_lr", 5, "float", "opt", None), ("display", 6, "int32", "opt", None),
        ("average_loss", 33, "int32", "opt", 1), ("max_iter", 7, "int32", "opt", None),
        ("iter_size", 36, "int32", "opt", 1), ("lr_policy", 8, "string", "opt", None),
        ("gamma", 9, "float", "opt", None), ("power", 10, "float", "opt", None),
        ("momentum", 11, "float", "opt", None), ("weight_decay", 12, "float", "opt", None),
        ("regularization_type", 29, "string", "opt", "L2"), ("stepsize", 13, "int32", "opt", None),
        ("stepvalue", 34, "int32", "rep", None), ("clip_gradients", 35, "float", "opt", -1.0),
        ("snapshot", 14, "int32", "opt", 0), ("snapshot_prefix", 15, "string", "opt", None),
        ("snapshot_diff", 16, "bool", "opt", False),
        ("snapshot_format", 37, "SolverParameter.SnapshotFormat", "opt", "BINARYPROTO"),
        ("solver_mode", 17, "SolverParameter.SolverMode", "opt", "GPU"),
        ("device_id", 18, "int32", "opt", 0), ("random_seed", 20, "int64", "opt", -1),
        ("type", 40, "string", "opt", "SGD"), ("delta", 31, "float", "opt", 1e-8),
        ("momentum2", 39, "float", "opt", 0.999), ("rms_decay", 38, "float", "opt", 0.99),
        ("debug_info", 23, "bool", "opt", False), ("snapshot_after_train", 28, "bool", "opt", True),
        ("solver_type", 30, "SolverParameter.SolverType", "opt", "SGD"),
    ],
    "TransformationParameter": [
        ("scale", 1, "float", "opt", 1.0), ("mirror", 2, "bool", "opt", False),
        ("crop_size", 3, "uint32", "opt", 0), ("mean_file", 4, "string", "opt", None),
        ("mean_value", 5, "float", "rep", None), ("force_color", 6, "bool", "opt", False),
        ("force_gray", 7, "bool", "opt", False),
    ],
    "LossParameter": [
        ("ignore_label", 1, "int32", "opt", None), ("normalize", 2, "bool", "opt", None),
        ("normalization", 3, "LossParameter.NormalizationMode", "opt", "VALID"),
    ],
    "AccuracyParameter": [
        ("top_k", 1, "uint32", "opt", 1), ("axis", 2, "int32", "opt", 1),
        ("ignore_label", 3, "int32", "opt", None),
    ],
    "ArgMaxParameter": [
        ("out_max_val", 1, "bool", "opt", False), ("top_k", 2, "uint32", "opt", 1),
        ("axis", 3, "int32", "opt", None),
    ],
    "ConcatParameter": [("concat_dim", 1, "uint32", "opt", 1), ("axis", 2, "int32", "opt", 1)],
    "BatchNormParameter": [
        ("use_global_stats", 1, "bool", "opt", None),
        ("moving_average_fraction", 2, "float", "opt", 0.999), ("eps", 3, "float", "opt", 1e-5),
    ],
    "BiasParameter": [
        ("axis", 1, "int32", "opt", 1), ("num_axes", 2, "int32", "opt", 1),
        ("filler", 3, "FillerParameter", "opt", None),
    ],
    "ConvolutionParameter": [
        ("num_output", 1, "uint32", "opt", None), ("bias_term", 2, "bool", "opt", True),
        ("pad", 3, "uint32", "rep", None), ("kernel_size", 4, "uint32", "rep", None),
        ("group", 5, "uint32", "opt", 1), ("stride", 6, "uint32", "rep", None),
        ("weight_filler", 7, "FillerParameter", "opt", None),
        ("bias_filler", 8, "FillerParameter", "opt", None),
        ("pad_h", 9, "uint32", "opt", 0), ("pad_w", 10, "uint32", "opt", 0),
        ("kernel_h", 11, "uint32", "opt", None), ("kernel_w", 12, "uint32", "opt", None),
        ("stride_h", 13, "uint32", "opt", None), ("stride_w", 14, "uint32", "opt", None),
        ("engine", 15, "ConvolutionParameter.Engine", "opt", "DEFAULT"),
        ("axis", 16, "int32", "opt", 1), ("force_nd_im2col", 17, "bool", "opt", False),
        ("dilation", 18, "uint32", "rep", None),
    ],
    "CropParameter": [("axis", 1, "int32", "opt", 2), ("offset", 2, "uint32", "rep", None)],
    "DataParameter": [
        ("source", 1, "string", "opt", None), ("scale", 2, "float", "opt", 1.0),
        ("mean_file", 3, "string", "opt", None), ("batch_size", 4, "uint32", "opt", None),
        ("crop_size", 5, "uint32", "opt", 0), ("mirror", 6, "bool", "opt", False),
        ("rand_skip", 7, "uint32", "opt", 0), ("backend", 8, "DataParameter.DB", "opt", "LEVELDB"),
        ("force_encoded_color", 9, "bool", "opt", False), ("prefetch", 10, "uint32", "opt", 4),
    ],
    "DropoutParameter": [("dropout_ratio", 1, "float", "opt", 0.5)],
    "DummyDataParameter": [
        ("data_filler", 1, "FillerParameter", "rep", None), ("num", 2, "uint32", "rep", None),
        ("channels", 3, "uint32", "rep", None), ("height", 4, "uint32", "rep", None),
        ("width", 5, "uint32", "rep", None), ("shape", 6, "BlobShape", "rep", None),
    ],
    "EltwiseParameter": [
        ("operation", 1, "EltwiseParameter.EltwiseOp", "opt", "SUM"), ("coeff", 2, "float", "rep", None),
        ("stable_prod_grad", 3, "bool", "opt", True),
    ],
    "ExpParameter": [
        ("base", 1, "float", "opt", -1.0), ("scale", 2, "float", "opt", 1.0),
        ("shift", 3, "float", "opt", 0.0),
    ],
    "FlattenParameter": [("axis", 1, "int32", "opt", 1), ("end_axis", 2, "int32", "opt", -1)],
    "HDF5DataParameter": [
        ("source", 1, "string", "opt", None), ("batch_size", 2, "uint32", "opt", None),
        ("shuffle", 3, "bool", "opt", False),
    ],
    "HDF5OutputParameter": [("file_name", 1, "string", "opt", None)],
    "ImageDataParameter": [
        ("source", 1, "string", "opt", None), ("scale", 2, "float", "opt", 1.0),
        ("mean_file", 3, "string", "opt", None), ("batch_size", 4, "uint32", "opt", 1),
        ("crop_size", 5, "uint32", "opt", 0), ("mirror", 6, "bool", "opt", False),
        ("rand_skip", 7, "uint32", "opt", 0), ("shuffle", 8, "bool", "opt", False),
        ("new_height", 9, "uint32", "opt", 0), ("new_width", 10, "uint32", "opt", 0),
        ("is_color", 11, "bool", "opt", True), ("root_folder", 12, "string", "opt", ""),
    ],
    "InnerProductParameter": [
        ("num_output", 1, "uint32", "opt", None), ("bias_term", 2, "bool", "opt", True),
        ("weight_filler", 3, "FillerParameter", "opt", None),
        ("bias_filler", 4, "FillerParameter", "opt", None), ("axis", 5, "int32", "opt", 1),
        ("transpose", 6, "bool", "opt", False),
    ],
    "InputParameter": [("shape", 1, "BlobShape", "rep", None)],
    "ClipParameter": [("min", 1, "float", "opt", None), ("max", 2, "float", "opt", None)],  # required
    "ELUParameter": [("alpha", 1, "float", "opt", 1.0)],
    "EmbedParameter": [
        ("num_output", 1, "uint32", "opt", None), ("input_dim", 2, "uint32", "opt", None),
        ("bias_term", 3, "bool", "opt", True), ("weight_filler", 4, "FillerParameter", "opt", None),
        ("bias_filler", 5, "FillerParameter", "opt", None),
    ],
    "LogParameter": [
        ("base", 1, "float", "opt", -1.0), ("scale", 2, "float", "opt", 1.0),
        ("shift", 3, "float", "opt", 0.0),
    ],
    "MVNParameter": [
        ("normalize_variance", 1, "bool", "opt", True), ("across_channels", 2, "bool", "opt", False),
        ("eps", 3, "float", "opt", 1e-9),
    ],
    "ParameterParameter": [("shape", 1, "BlobShape", "opt", None)],
    "PReLUParameter": [("filler", 1, "FillerParameter", "opt", None),
                       ("channel_shared", 2, "bool", "opt", False)],
    "RecurrentParameter": [
        ("num_output", 1, "uint32", "opt", 0), ("weight_filler", 2, "FillerParameter", "opt", None),
        ("bias_filler", 3, "FillerParameter", "opt", None), ("debug_info", 4, "bool", "opt", False),
        ("expose_hidden", 5, "bool", "opt", False),
    ],
    "SPPParameter": [
        ("pyramid_height", 1, "uint32", "opt", None),
        ("pool", 2, "SPPParameter.PoolMethod", "opt", "MAX"),
        ("engine", 6, "SPPParameter.Engine", "opt", "DEFAULT"),
    ],
    "SwishParameter": [("beta", 1, "float", "opt", 1.0)],
    "TileParameter": [("axis", 1, "int32", "opt", 1), ("tiles", 2, "int32", "opt", None)],
    "LRNParameter": [
        ("local_size", 1, "uint32", "opt", 5), ("alpha", 2, "float", "opt", 1.0),
        ("beta", 3, "float", "opt", 0.75),
        ("norm_region", 4, "LRNParameter.NormRegion", "opt", "ACROSS_CHANNELS"),
        ("k", 5, "float", "opt", 1.0), ("engine", 6, "LRNParameter.Engine", "opt", "DEFAULT"),
    ],
    "MemoryDataParameter": [
        ("batch_size", 1, "uint32", "opt", None), ("channels", 2, "uint32", "opt", None),
        ("height", 3, "uint32", "opt", None), ("width", 4, "uint32", "opt", None),
    ],
    "PoolingParameter": [
        ("pool", 1, "PoolingParameter.PoolMethod", "opt", "MAX"),
        ("kernel_size", 2, "uint32", "opt", None), ("stride", 3, "uint32", "opt", 1),
        ("pad", 4, "uint32", "opt", 0), ("kernel_h", 5, "uint32", "opt", None),
        ("kernel_w", 6, "uint32", "opt", None), ("stride_h", 7, "uint32", "opt", None),
        ("stride_w", 8, "uint32", "opt", None), ("pad_h", 9, "uint32", "opt", 0),
        ("pad_w", 10, "uint32", "opt", 0),
        ("engine", 11, "PoolingParameter.Engine", "opt", "DEFAULT"),
        ("global_pooling", 12, "bool", "opt", False),
        ("round_mode", 13, "PoolingParameter.RoundMode", "opt", "CEIL"),
    ],
    "PowerParameter": [
        ("power", 1, "float", "opt", 1.0), ("scale", 2, "float", "opt", 1.0),
        ("shift", 3, "float", "opt", 0.0),
    ],
    "PythonParameter": [
        ("module", 1, "string", "opt", None), ("layer", 2, "string", "opt", None),
        ("param_str", 3, "string", "opt", ""), ("share_in_parallel", 4, "bool", "opt", False),
    ],
    "ReductionParameter": [
        ("operation", 1, "ReductionParameter.ReductionOp", "opt", "SUM"),
        ("axis", 2, "int32", "opt", 0), ("coeff", 3, "float", "opt", 1.0),
    ],
    "ReLUParameter": [
        ("negative_slope", 1, "float", "opt", 0.0), ("engine", 2, "ReLUParameter.Engine", "opt", "DEFAULT"),
    ],
    "ReshapeParameter": [
        ("shape", 1, "BlobShape", "opt", None), ("axis", 2, "int32", "opt", 0),
        ("num_axes", 3, "int32", "opt", -1),
    ],
    "ScaleParameter": [
        ("axis", 1, "int32", "opt", 1), ("num_axes", 2, "int32", "opt", 1),
        ("filler", 3, "FillerParameter", "opt", None), ("bias_term", 4, "bool", "opt", False),
        ("bias_filler", 5, "FillerParameter", "opt", None),
    ],
    "SigmoidParameter": [("engine", 1, "SigmoidParameter.Engine", "opt", "DEFAULT")],
    "SliceParameter": [
        ("slice_dim", 1, "uint32", "opt", 1), ("slice_point", 2, "uint32", "rep", None),
        ("axis", 3, "int32", "opt", 1),
    ],
    "SoftmaxParameter": [
        ("engine", 1, "SoftmaxParameter.Engine", "opt", "DEFAULT"), ("axis", 2, "int32", "opt", 1),
    ],
    "TanHParameter": [("engine", 1, "TanHParameter.Engine", "opt", "DEFAULT")],
    "ThresholdParameter": [("threshold", 1, "float", "opt", 0.0)],
    "WindowDataParameter": [
        ("source", 1, "string", "opt", None), ("scale", 2, "float", "opt", 1.0),
        ("mean_file", 3, "string", "opt", None), ("batch_size", 4, "uint32", "opt", None),
        ("crop_size", 5, "uint32", "opt", 0), ("mirror", 6, "bool", "opt", False),
        ("fg_threshold", 7, "float", "opt", 0.5), ("bg_threshold", 8, "float", "opt", 0.5),
        ("fg_fraction", 9, "float", "opt", 0.25), ("context_pad", 10, "uint32", "opt", 0),
        ("crop_mode", 11, "string", "opt", "warp"), ("cache_images", 12, "bool", "opt", False),
        ("root_folder", 13, "string", "opt", ""),
    ],
}


def _default_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _build_file() -> descriptor_pb2.FileDescriptorProto:
    """Compile the tables above into one proto2 file descriptor."""
    fdp = descriptor_pb2.FileDescriptorProto(name="fcnref_caffe.proto", package=PACKAGE, syntax="proto2")
    messages: dict[str, descriptor_pb2.DescriptorProto] = {}
    for name in MESSAGES:
        messages[name] = fdp.message_type.add(name=name)
    for full, values in ENUMS.items():
        owner, _, enum_name = full.rpartition(".")
        container = messages[owner].enum_type if owner else fdp.enum_type
        enum = container.add(name=enum_name)
        for value_name, number in values:
            enum.value.add(name=value_name, number=number)
    fork_rows = schema_rows()  # fork spellings, at private numbers (convert/fork_fields.py)
    for name, fields in MESSAGES.items():
        for field_name, number, type_name, label, default in [*fields, *fork_rows.get(name, [])]:
            field = messages[name].field.add(name=field_name, number=number)
            field.label = _F.LABEL_OPTIONAL if label == "opt" else _F.LABEL_REPEATED
            if label == "packed":
                field.options.packed = True
            if type_name in _SCALARS:
                field.type = _SCALARS[type_name]
            elif type_name in ENUMS:
                field.type = _F.TYPE_ENUM
                field.type_name = f".{PACKAGE}.{type_name}"
            else:
                field.type = _F.TYPE_MESSAGE
                field.type_name = f".{PACKAGE}.{type_name}"
            if default is not None and label == "opt":
                field.default_value = _default_text(default)
    return fdp


def _message_classes() -> dict[str, type]:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_build_file())
    get_class = getattr(message_factory, "GetMessageClass", None)
    classes = {}
    for name in MESSAGES:
        descriptor = pool.FindMessageTypeByName(f"{PACKAGE}.{name}")
        if get_class is not None:
            classes[name] = get_class(descriptor)
        else:  # protobuf < 4.22
            classes[name] = message_factory.MessageFactory(pool).GetPrototype(descriptor)
    return classes


_CLASSES = _message_classes()
NetParameter = _CLASSES["NetParameter"]
LayerParameter = _CLASSES["LayerParameter"]
V1LayerParameter = _CLASSES["V1LayerParameter"]
BlobProto = _CLASSES["BlobProto"]
BlobShape = _CLASSES["BlobShape"]
BlobProtoVector = _CLASSES["BlobProtoVector"]
SolverParameter = _CLASSES["SolverParameter"]
