"""Layer helpers shared by the public-net generators: one function per Caffe layer kind, each
appending to a NetText and returning its top, so that a net reads like its prototxt."""
from __future__ import annotations

from dataclasses import dataclass

from .prototxt import MAX, Enum, NetText


@dataclass(frozen=True)
class Width:
    """Channel counts of a net at a fraction of its published width (1.0 = as published).
    ``multiple`` keeps counts divisible where grouped convolutions need it."""

    factor: float = 1.0
    fc_factor: float | None = None  # fully connected widths (4096) when cut harder than the convs

    def __call__(self, channels: int, multiple: int = 1) -> int:
        return max(multiple, multiple * round(channels * self.factor / multiple))

    def fc(self, channels: int) -> int:
        return max(1, round(channels * (self.factor if self.fc_factor is None else self.fc_factor)))


def conv(net: NetText, name: str, bottom: str, num_output: int, kernel: int, stride: int = 1, pad: int = 0,
         group: int = 1, dilation: int = 1, bias: bool = True, top: str | None = None,
         deconv: bool = False, frozen: bool = False, extra: dict | None = None) -> str:
    """Convolution (or Deconvolution); ``frozen`` writes lr_mult 0 (a fixed bilinear upsampling,
    which the generator fills with bilinear kernels)."""
    p: dict = {"num_output": num_output}
    if not bias:
        p["bias_term"] = False
    if pad:
        p["pad"] = pad
    p["kernel_size"] = kernel
    if stride != 1:
        p["stride"] = stride
    if group != 1:
        p["group"] = group
    if dilation != 1:
        p["dilation"] = dilation
    p.update(extra or {})
    params = {}
    if frozen:
        params["param"] = [{"lr_mult": 0, "decay_mult": 1}] + ([{"lr_mult": 0, "decay_mult": 0}] if bias else [])
    return net.layer(name, "Deconvolution" if deconv else "Convolution", [bottom], [top or name],
                     **params, convolution_param=p)


def relu(net: NetText, name: str, blob: str) -> str:
    return net.layer(name, "ReLU", [blob], [blob])


def pool(net: NetText, name: str, bottom: str, kind: Enum = MAX, kernel: int = 0, stride: int = 1, pad: int = 0,
         global_pooling: bool = False, ceil_mode: bool | None = None, top: str | None = None) -> str:
    p: dict = {"pool": kind}
    if global_pooling:
        p["global_pooling"] = True
    else:
        p["kernel_size"] = kernel
        p["stride"] = stride
    if pad:
        p["pad"] = pad
    if ceil_mode is not None:  # the fork field (13) of the Caffe these nets were published for
        p["ceil_mode"] = ceil_mode
    return net.layer(name, "Pooling", [bottom], [top or name], pooling_param=p)


def lrn(net: NetText, name: str, bottom: str, size: int = 5, alpha: float = 1e-4, beta: float = 0.75) -> str:
    return net.layer(name, "LRN", [bottom], [name], lrn_param={"local_size": size, "alpha": alpha, "beta": beta})


def batch_norm(net: NetText, name: str, bottom: str, top: str | None = None, eps: float | None = None,
               params: bool = False, global_stats: bool = False) -> str:
    """BatchNorm in inference form (TEST phase uses the stored statistics); in place by default.
    ``global_stats`` writes that default out, as ResNet's deploy does."""
    p: dict = {"use_global_stats": True} if global_stats else {}
    if eps is not None:
        p["eps"] = eps
    extra: dict = {"batch_norm_param": p}
    if params:
        extra["param"] = [{"lr_mult": 0, "decay_mult": 0}] * 3
    return net.layer(name, "BatchNorm", [bottom], [top or bottom], **extra)


def scale(net: NetText, name: str, blob: str, bias: bool = True, top: str | None = None) -> str:
    return net.layer(name, "Scale", [blob], [top or blob], scale_param={"bias_term": bias})


def bn_scale(net: NetText, bn_name: str, scale_name: str, bottom: str, top: str | None = None,
             eps: float | None = None, global_stats: bool = False) -> str:
    """The BatchNorm + Scale pair of ResNet/MobileNet/DenseNet (Caffe's BatchNorm has no affine part)."""
    blob = batch_norm(net, bn_name, bottom, top, eps, global_stats=global_stats)
    return scale(net, scale_name, blob)


def concat(net: NetText, name: str, bottoms: list[str], top: str | None = None, legacy_dim: bool = False) -> str:
    """Concat along channels; ``legacy_dim`` writes the deprecated ``concat_dim`` as HED does."""
    p = {"concat_param": {"concat_dim": 1}} if legacy_dim else {}
    return net.layer(name, "Concat", bottoms, [top or name], **p)


def eltwise_sum(net: NetText, name: str, bottoms: list[str]) -> str:
    return net.layer(name, "Eltwise", bottoms, [name])


def inner_product(net: NetText, name: str, bottom: str, num_output: int) -> str:
    return net.layer(name, "InnerProduct", [bottom], [name], inner_product_param={"num_output": num_output})


def dropout(net: NetText, name: str, blob: str, ratio: float = 0.5) -> str:
    return net.layer(name, "Dropout", [blob], [blob], dropout_param={"dropout_ratio": ratio})


def softmax(net: NetText, name: str, bottom: str, top: str | None = None) -> str:
    return net.layer(name, "Softmax", [bottom], [top or name])


def sigmoid(net: NetText, name: str, bottom: str) -> str:
    return net.layer(name, "Sigmoid", [bottom], [name])
