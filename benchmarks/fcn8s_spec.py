"""Full-width FCN-8s (voc-fcn8s deploy geometry and layer names) as prototxt text.

Pure Python with no imports beyond the standard library, so it runs under both the project python
and Debian's python3 with pycaffe (benchmarks/make_fcn8s_caffemodel.py, benchmarks/caffe_forward.py).
"""

from __future__ import annotations

NUM_CLASSES = 21
# (block, number of 3x3 convs, width)
VGG_BLOCKS = [(1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512)]


def _conv(name: str, bottom: str, num: int, kernel: int, pad: int = 0) -> str:
    return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}"\n'
            f'  convolution_param {{ num_output: {num} kernel_size: {kernel} pad: {pad} stride: 1 }} }}\n')


def _relu(name: str, blob: str) -> str:
    return f'layer {{ name: "{name}" type: "ReLU" bottom: "{blob}" top: "{blob}" }}\n'


def _deconv(name: str, bottom: str, kernel: int, stride: int) -> str:
    return (f'layer {{ name: "{name}" type: "Deconvolution" bottom: "{bottom}" top: "{name}"\n'
            f'  convolution_param {{ num_output: {NUM_CLASSES} bias_term: false kernel_size: {kernel}'
            f' stride: {stride} }} }}\n')


def _crop(name: str, bottom: str, like: str, offset: int) -> str:
    return (f'layer {{ name: "{name}" type: "Crop" bottom: "{bottom}" bottom: "{like}" top: "{name}"\n'
            f'  crop_param {{ axis: 2 offset: {offset} }} }}\n')


def _sum(name: str, a: str, b: str) -> str:
    return (f'layer {{ name: "{name}" type: "Eltwise" bottom: "{a}" bottom: "{b}" top: "{name}"\n'
            f'  eltwise_param {{ operation: SUM }} }}\n')


def fcn8s_prototxt(height: int = 500, width: int = 500) -> str:
    """Deploy prototxt of voc-fcn8s (conv1_1 pad 100, crops 5/9/31, bilinear-shaped deconvs)."""
    text = ['name: "FCN8s"\n',
            f'layer {{ name: "input" type: "Input" top: "data"\n'
            f'  input_param {{ shape {{ dim: 1 dim: 3 dim: {height} dim: {width} }} }} }}\n']
    bottom = "data"
    for block, n, width_ in VGG_BLOCKS:
        for i in range(1, n + 1):
            name = f"conv{block}_{i}"
            text.append(_conv(name, bottom, width_, 3, 100 if name == "conv1_1" else 1))
            text.append(_relu(f"relu{block}_{i}", name))
            bottom = name
        text.append(f'layer {{ name: "pool{block}" type: "Pooling" bottom: "{bottom}" top: "pool{block}"\n'
                    f'  pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}\n')
        bottom = f"pool{block}"
    text += [_conv("fc6", "pool5", 4096, 7), _relu("relu6", "fc6"),
             _conv("fc7", "fc6", 4096, 1), _relu("relu7", "fc7"),
             _conv("score_fr", "fc7", NUM_CLASSES, 1),
             _deconv("upscore2", "score_fr", 4, 2),
             _conv("score_pool4", "pool4", NUM_CLASSES, 1),
             _crop("score_pool4c", "score_pool4", "upscore2", 5),
             _sum("fuse_pool4", "upscore2", "score_pool4c"),
             _deconv("upscore_pool4", "fuse_pool4", 4, 2),
             _conv("score_pool3", "pool3", NUM_CLASSES, 1),
             _crop("score_pool3c", "score_pool3", "upscore_pool4", 9),
             _sum("fuse_pool3", "upscore_pool4", "score_pool3c"),
             _deconv("upscore8", "fuse_pool3", 16, 8),
             _crop("score", "upscore8", "data", 31)]
    return "".join(text)


def conv_flops(height: int = 500, width: int = 500) -> dict[str, float]:
    """2*MACs of direct convolution/deconvolution per layer of fcn8s_prototxt at this input size."""
    flops: dict[str, float] = {}
    h, w, c = height + 198, width + 198, 3  # conv1_1 output (pad 100)
    for block, n, width_ in VGG_BLOCKS:
        for i in range(1, n + 1):
            flops[f"conv{block}_{i}"] = 2.0 * h * w * width_ * c * 9
            c = width_
        h, w = -(-h // 2), -(-w // 2)
        if block == 3:
            pool3 = (h, w)
        if block == 4:
            pool4 = (h, w)
    h6, w6 = h - 6, w - 6
    flops["fc6"] = 2.0 * h6 * w6 * 4096 * 512 * 49
    flops["fc7"] = 2.0 * h6 * w6 * 4096 * 4096
    flops["score_fr"] = 2.0 * h6 * w6 * NUM_CLASSES * 4096
    # Deconvolution: every input pixel scatters a k*k kernel to every output channel.
    flops["upscore2"] = 2.0 * h6 * w6 * NUM_CLASSES * NUM_CLASSES * 16
    flops["score_pool4"] = 2.0 * pool4[0] * pool4[1] * NUM_CLASSES * 512
    u2 = (2 * (h6 - 1) + 4, 2 * (w6 - 1) + 4)
    flops["upscore_pool4"] = 2.0 * u2[0] * u2[1] * NUM_CLASSES * NUM_CLASSES * 16
    flops["score_pool3"] = 2.0 * pool3[0] * pool3[1] * NUM_CLASSES * 256
    u4 = (2 * (u2[0] - 1) + 4, 2 * (u2[1] - 1) + 4)
    flops["upscore8"] = 2.0 * u4[0] * u4[1] * NUM_CLASSES * NUM_CLASSES * 256
    return flops


if __name__ == "__main__":
    f = conv_flops()
    print(f"total {sum(f.values()) / 1e9:.1f} GFLOP")
    for k, v in f.items():
        print(f"{k:14} {v / 1e9:8.2f}")
