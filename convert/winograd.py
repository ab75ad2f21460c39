"""Winograd minimal-filtering convolution F(m x m, 3 x 3) for stride-1 3x3 convolutions, in torch ops.

Why: on a small CPU, FCN's VGG16 trunk is bound by multiply count, and direct convolution (mkldnn,
Caffe's im2col+GEMM) cannot beat the GEMM roofline. F(4x4, 3x3) does 36 multiplications per 4x4
output tile and channel pair instead of 144, so it turns one big convolution into 36 smaller GEMMs
(one per transform position, ``torch.bmm``) framed by two cheap linear transforms, which we also
run as GEMMs with small Kronecker matrices. Tiles are processed in chunks of tile rows so the
transformed tensors stay in cache. Reference: Lavin & Gray, "Fast Algorithms for Convolutional
Neural Networks" (2015); the transform matrices are built here by the Cook-Toom construction.
Training's weight gradient is the same algorithm run backwards (``winograd_weight_gradient``).

Only stride 1, dilation 1, group 1, 3x3 kernels; callers keep ``F.conv2d`` for everything else.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from convert.gemm import onednn_linear

__all__ = [
    "winograd_matrices",
    "transform_weight",
    "winograd_conv3x3",
    "winograd_weight_gradient",
    "TransformCache",
]


# Interpolation points per output tile size m (the point at infinity is implicit). For F(4,3) the
# pair (1/2, -2) instead of Lavin's (2, -2) measured 2-3x lower fp32 error (benchmarks/README.md).
_POINTS: dict[int, tuple[float, ...]] = {
    2: (0.0, 1.0, -1.0),
    4: (0.0, 1.0, -1.0, 0.5, -2.0),
    6: (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5),
}
_TILE_BYTES = 10 << 20  # one chunk's transformed input: measured best for conv4/conv5 (README)


def winograd_matrices(m: int, r: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return float64 (A^T (m,n), G (n,r), B^T (n,n)), n = m+r-1, with y = A^T[(G g) * (B^T d)].

    ``y[i] = sum_k g[k] d[i+k]`` (correlation, as Caffe/PyTorch convolutions compute).
    """
    pts = _POINTS[m]
    n = m + r - 1
    if len(pts) != n - 1:
        raise ValueError(f"F({m},{r}) needs {n - 1} finite points")
    at = np.zeros((m, n))
    g = np.zeros((n, r))
    bt = np.zeros((n, n))
    for j, p in enumerate(pts):
        others = [q for q in pts if q != p]
        at[:, j] = [p**i for i in range(m)]
        g[j] = [p**k / np.prod([p - q for q in others]) for k in range(r)]
        bt[j, : n - 1] = np.polynomial.polynomial.polyfromroots(others) if others else [1.0]
    at[m - 1, n - 1] = 1.0
    g[n - 1, r - 1] = 1.0
    bt[n - 1] = np.polynomial.polynomial.polyfromroots(pts)
    return at, g, bt


@lru_cache(maxsize=None)
def _kron_matrices(m: int) -> tuple[Tensor, Tensor]:
    """(kron(B^T,B^T), kron(A^T,A^T)) in fp32: the 2-D transforms as one matrix each."""
    at, _, bt = winograd_matrices(m)
    bb = torch.from_numpy(np.kron(bt, bt)).float()
    aa = torch.from_numpy(np.kron(at, at)).float()
    return bb, aa


def transform_weight(weight: Tensor, m: int = 4, precision: torch.dtype = torch.float64) -> Tensor:
    """(Cout, Cin, 3, 3) -> (n*n, Cout, Cin) fp32 Winograd-domain weights, computed in ``precision``.

    For inference it is done once per layer (cache the result), in float64, which keeps the
    transform exact to fp32. A training weight changes every step: ``convert.trainpath`` transforms
    it per call in float32 (the accuracy gate measures the result).
    """
    if weight.dim() != 4 or tuple(weight.shape[2:]) != (3, 3):
        raise ValueError(f"expected a (Cout, Cin, 3, 3) weight, got {tuple(weight.shape)}")
    cout, cin = weight.shape[:2]
    gg = _kron_g(m).to(device=weight.device, dtype=precision)  # U[a,b] = sum_kl G[a,k] w[k,l] G[b,l]
    u = torch.mm(gg, weight.detach().to(precision).reshape(cout * cin, 9).t())  # (n*n, Cout*Cin), one GEMM
    return u.view(-1, cout, cin).float()


@lru_cache(maxsize=None)
def _kron_g(m: int) -> Tensor:
    """kron(G, G) in float64, (n*n, 9): the 2-D weight transform as one matrix."""
    _, g, _ = winograd_matrices(m)
    return torch.from_numpy(np.kron(g, g))


def _batched_gemm(v: Tensor, u: Tensor) -> Tensor:
    """(K, P, Cin) x (K, Cout, Cin) -> (K, P, Cout), i.e. v[k] @ u[k].T for every position k.

    oneDNN's fp32 GEMM (``convert.gemm``) runs about twice as fast as MKL's ``torch.bmm`` on the AMD
    AVX-512 CPUs we measured; ``torch.bmm`` is the portable path (no oneDNN op, other dtypes/devices).
    """
    op = onednn_linear()
    if op is not None and v.dtype == torch.float32 and v.device.type == "cpu":
        return torch.stack([op(v[k], u[k], None, "none", [], "") for k in range(v.shape[0])])
    return torch.bmm(v, u.transpose(1, 2))


def _padding_pair(padding: int | tuple[int, int]) -> tuple[int, int]:
    return (padding, padding) if isinstance(padding, int) else (int(padding[0]), int(padding[1]))


def _tiles(t: Tensor, side: int, step: int, rows: slice) -> Tensor:
    """Tiles ``side`` x ``side`` every ``step`` pixels of the tile rows ``rows`` of a padded
    (N, C, H, W) tensor, as (side*side, N*rows*tiles_per_row*C): tile position first, channels
    innermost (the layout the transforms and the GEMMs read)."""
    rows_of = t[:, :, rows.start * step: (rows.stop - 1) * step + side]
    tiles = rows_of.unfold(2, side, step).unfold(3, side, step)  # (N, C, rows, tw, side, side)
    return tiles.permute(4, 5, 0, 2, 3, 1).reshape(side * side, -1)


def _tile_size(transformed_weight: Tensor) -> int:
    nn_ = transformed_weight.shape[0]
    n = int(round(nn_**0.5))
    if n * n != nn_ or n - 2 not in _POINTS:
        raise ValueError(f"transformed weight has {nn_} positions; expected 16, 36 or 64")
    return n - 2


def winograd_conv3x3(x: Tensor, transformed_weight: Tensor, bias: Tensor | None = None,
                     padding: int | tuple[int, int] = 1, rows_per_chunk: int | None = None) -> Tensor:
    """3x3 stride-1 convolution of x (N, Cin, H, W) fp32 with weights from ``transform_weight``.

    Equals ``F.conv2d(x, weight, bias, padding=padding)`` up to fp32 rounding.
    """
    m = _tile_size(transformed_weight)
    n = m + 2
    nn2, cout, cin = transformed_weight.shape
    if x.dim() != 4 or x.shape[1] != cin:
        raise ValueError(f"input {tuple(x.shape)} does not match weight with {cin} input channels")
    ph, pw = _padding_pair(padding)
    batch, _, h, w = x.shape
    ho, wo = h + 2 * ph - 2, w + 2 * pw - 2
    if ho < 1 or wo < 1:
        raise ValueError(f"input {h}x{w} with padding {ph},{pw} is smaller than the kernel")
    th, tw = -(-ho // m), -(-wo // m)
    # Zero padding up to whole tiles; the extra bottom/right outputs are cut off at the end.
    xp = F.pad(x, (pw, tw * m + 2 - w - pw, ph, th * m + 2 - h - ph))
    bb, aa = _kron_matrices(m)
    bb, aa = bb.to(x.dtype), aa.to(x.dtype)
    u = transformed_weight.to(x.dtype)
    # Output in the input's memory format: with channels_last both the tile gather and the scatter
    # below walk channels contiguously, and oneDNN convolutions around us avoid layout reorders.
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    if channels_last:
        out6 = x.new_empty((batch, th, m, tw, m, cout)).permute(0, 5, 1, 2, 3, 4)
        out = out6.permute(0, 2, 3, 4, 5, 1).view(batch, th * m, tw * m, cout).permute(0, 3, 1, 2)
    else:
        out = x.new_empty((batch, cout, th * m, tw * m))
        out6 = out.view(batch, cout, th, m, tw, m)
    if rows_per_chunk is None:
        per_row = nn2 * max(cin, cout) * batch * tw * x.element_size()
        rows_per_chunk = max(1, min(th, _TILE_BYTES // max(per_row, 1)))
    for r0 in range(0, th, rows_per_chunk):
        r1 = min(th, r0 + rows_per_chunk)
        rows = r1 - r0
        p = batch * rows * tw
        # one GEMM with kron(B^T, B^T) transforms every tile; each position is then a (P, Cin) matrix
        v = torch.mm(bb, _tiles(xp, n, m, slice(r0, r1))).view(nn2, p, cin)
        mm = _batched_gemm(v, u)  # (n*n, P, Cout): the only O(Cin*Cout) work
        y = torch.mm(aa, mm.view(nn2, p * cout))  # (m*m, P*Cout)
        if bias is not None:
            y.view(m * m, p, cout).add_(bias)
        out6[:, :, r0:r1].copy_(y.view(m, m, batch, rows, tw, cout).permute(2, 5, 3, 0, 4, 1))
    if ho != th * m or wo != tw * m:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        out = out[:, :, :ho, :wo].contiguous(memory_format=fmt)
    return out


def winograd_weight_gradient(x: Tensor, grad: Tensor, padding: int | tuple[int, int] = 1, m: int = 4,
                             chunk_bytes: int | None = None) -> Tensor:
    """The weight gradient (Cout, Cin, 3, 3) of a 3x3 stride-1 convolution of x (N, Cin, H, W)
    with ``padding``, for the output gradient ``grad`` (N, Cout, Ho, Wo), as F(m x m, 3 x 3).

    Why: the forward is ``y_tile = A^T [U * V] A`` with ``U = G w G^T`` and ``V = B^T d B``, so
    ``dW = G^T (sum over tiles of (A dy_tile A^T) * V) G``: per transform position one GEMM
    (Cout x tiles) @ (tiles x Cin), 36 positions for F(4x4) against 9 kernel offsets each as large
    for the direct weight gradient, i.e. a quarter of the multiplications (F(2x2): 16 of 36). The
    tiles are transformed a chunk of tile rows at a time; each chunk rereads and rewrites the
    (n*n, Cout, Cin) accumulator, so a chunk is made about as large as it (``chunk_bytes``, at least
    8 MB).
    """
    n = m + 2
    if m not in _POINTS:
        raise ValueError(f"no F({m}x{m}, 3x3) transform; tile sides are {sorted(_POINTS)}")
    if x.dim() != 4 or grad.dim() != 4 or x.shape[0] != grad.shape[0]:
        raise ValueError(f"input {tuple(x.shape)} and output gradient {tuple(grad.shape)} do not match")
    ph, pw = _padding_pair(padding)
    batch, cin, h, w = x.shape
    cout, ho, wo = grad.shape[1:]
    if (ho, wo) != (h + 2 * ph - 2, w + 2 * pw - 2):
        raise ValueError(f"output gradient {tuple(grad.shape)} is not the output of a 3x3 convolution "
                         f"of {tuple(x.shape)} with padding {ph},{pw}")
    th, tw = -(-ho // m), -(-wo // m)
    # zeros up to whole tiles: the extra outputs have a zero gradient and add nothing
    xp = F.pad(x, (pw, tw * m + 2 - w - pw, ph, th * m + 2 - h - ph))
    gp = grad if (th * m, tw * m) == (ho, wo) else F.pad(grad, (0, tw * m - wo, 0, th * m - ho))
    bb, aa = (t.to(x) for t in _kron_matrices(m))
    # the transposes of the output and weight transforms carry the gradient back through them
    aa_t, gg_t = aa.t().contiguous(), _kron_g(m).t().to(x).contiguous()
    accumulated = x.new_zeros((n * n, cout, cin))
    if chunk_bytes is None:
        chunk_bytes = max(8 << 20, accumulated.numel() * accumulated.element_size())
    per_row = n * n * (cin + cout) * batch * tw * x.element_size()
    rows_per_chunk = max(1, min(th, chunk_bytes // max(per_row, 1)))
    for r0 in range(0, th, rows_per_chunk):
        rows = slice(r0, min(th, r0 + rows_per_chunk))
        v = torch.mm(bb, _tiles(xp, n, m, rows)).view(n * n, -1, cin)  # B^T d B per tile
        dv = torch.mm(aa_t, _tiles(gp, m, m, rows)).view(n * n, -1, cout)  # A dy A^T per tile
        accumulated.baddbmm_(dv.transpose(1, 2), v)
    grad_w = torch.mm(gg_t, accumulated.view(n * n, -1))
    return grad_w.view(3, 3, cout, cin).permute(2, 3, 0, 1).contiguous()


class TransformCache:
    """The transformed weight of one layer, recomputed only when the weight tensor changes.

    Why: ``transform_weight`` costs ~50 ms for a 512x512 layer, as much as the convolution. The
    cache is valid while the weight has the same storage and version counter (in-place writes such
    as ``load_state_dict`` bump it) and shape, dtype and device. It keeps a detached alias of the
    weight it was computed from, so that storage cannot be freed and reused by a new weight at the
    same address. Inference tensors have no version counter: ``trackable`` is False for them and
    callers should not use the cache (an in-place write in inference mode would go unnoticed).
    """

    def __init__(self, m: int = 4) -> None:
        self.m = m
        self._source: Tensor | None = None
        self._version: int | None = None
        self._value: Tensor | None = None

    @staticmethod
    def trackable(weight: Tensor) -> bool:
        """Whether in-place writes to ``weight`` can be noticed (it has a version counter)."""
        try:
            weight._version
        except RuntimeError:
            return False
        return True

    def valid_for(self, weight: Tensor) -> bool:
        src = self._source
        if src is None or self._value is None or not self.trackable(weight):
            return False
        return (weight.data_ptr() == src.data_ptr() and weight._version == self._version
                and weight.shape == src.shape and weight.stride() == src.stride()
                and weight.dtype == src.dtype and weight.device == src.device)

    def __call__(self, weight: Tensor) -> Tensor:
        if not self.valid_for(weight):
            self._value = transform_weight(weight, self.m).to(weight.device)
            self._source = weight.detach()
            self._version = weight._version if self.trackable(weight) else None
        return self._value

    def clear(self) -> None:
        """Drop the cached transform (it costs 36/9 times the weight's memory for F(4x4))."""
        self._source = self._version = self._value = None
