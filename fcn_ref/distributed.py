"""PyTorch's own distributed engine under ``torchrun``: process group set-up, rank and world, sums.

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
``init_from_env`` joins that group (gloo on CPU; NCCL on CUDA, each rank on GPU ``LOCAL_RANK``) and
is a no-op in a plain ``python`` run, so the same command works both ways. There is no launcher
here: torchrun is the launcher. NCCL reduces only CUDA tensors and gloo (here) CPU ones, so the sums
below move their operand to the group's device and back.
"""
# No "from __future__ import annotations": DDP checks sum_hook's annotations as objects.

import os

import numpy as np
import torch
import torch.distributed as dist


def init_from_env(device: "torch.device | str" = "cpu") -> tuple[int, int]:
    """Join torchrun's process group if this process was started by it; returns (rank, world)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if torch.device(device).type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))  # before NCCL: one GPU a rank
            dist.init_process_group("nccl")
        else:
            dist.init_process_group("gloo")
    return rank_and_world()


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def collective_device() -> torch.device:
    """Where the group's collectives take their tensors: the current GPU under NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def sum_array(array: np.ndarray) -> np.ndarray:
    """The element-wise sum of ``array`` over all ranks (exact for integer arrays)."""
    if rank_and_world()[1] == 1:
        return array
    tensor = torch.from_numpy(np.ascontiguousarray(array)).to(collective_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().numpy()


def sum_float(value: float) -> float:
    """``value`` summed over all ranks in float64."""
    return float(sum_array(np.array([value], dtype=np.float64))[0])


def gather_objects(obj: object) -> list[object]:
    """Every rank's ``obj``, in rank order (one-element list outside a group)."""
    world = rank_and_world()[1]
    if world == 1:
        return [obj]
    out: list[object] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def sum_hook(state: object, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """DDP communication hook: all-reduce gradients as a sum, not DDP's default mean, so the
    solver sees the gradient sum of every image of the iteration, as one Caffe process with
    ``iter_size`` = world x iter_size does (gradient clipping acts on that sum, as in Caffe)."""
    future = dist.all_reduce(bucket.buffer(), op=dist.ReduceOp.SUM, async_op=True).get_future()
    return future.then(lambda f: f.value()[0])


def shutdown() -> None:
    """Leave the process group cleanly (all ranks meet first): a rank that exits while gloo's group
    is still alive can abort at interpreter exit."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
