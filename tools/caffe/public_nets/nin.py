"""Network in Network (ImageNet) as in the Caffe Model Zoo gist mavenlin/d802a5849de39225bcc6:
mlpconv stages (a spatial conv followed by two 1x1 "cccp" convs), average pooling, no fc."""
from __future__ import annotations

from .layers import Width, conv, dropout, pool, relu
from .prototxt import AVE, NetText


def build(w: Width, classes: int, shape: tuple[int, ...]) -> NetText:
    net = NetText("nin_imagenet")
    x = net.input("data", shape, "input_dim")
    x = relu(net, "relu0", conv(net, "conv1", x, w(96), 11, stride=4))
    x = relu(net, "relu1", conv(net, "cccp1", x, w(96), 1))
    x = relu(net, "relu2", conv(net, "cccp2", x, w(96), 1))
    x = pool(net, "pool0", x, kernel=3, stride=2)
    x = relu(net, "relu3", conv(net, "conv2", x, w(256), 5, pad=2))
    x = relu(net, "relu5", conv(net, "cccp3", x, w(256), 1))
    x = relu(net, "relu6", conv(net, "cccp4", x, w(256), 1))
    x = pool(net, "pool2", x, kernel=3, stride=2)
    x = relu(net, "relu7", conv(net, "conv3", x, w(384), 3, pad=1))
    x = relu(net, "relu8", conv(net, "cccp5", x, w(384), 1))
    x = relu(net, "relu9", conv(net, "cccp6", x, w(384), 1))
    x = dropout(net, "drop", pool(net, "pool3", x, kernel=3, stride=2))
    x = relu(net, "relu10", conv(net, "conv4-1024", x, w(1024), 3, pad=1))
    x = relu(net, "relu11", conv(net, "cccp7-1024", x, w(1024), 1))
    x = relu(net, "relu12", conv(net, "cccp8-1024", x, classes, 1))
    pool(net, "pool4", x, AVE, kernel=6, stride=1)
    return net
