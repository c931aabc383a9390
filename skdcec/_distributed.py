"""Data-parallel training of one model by the processes that ``torchrun`` starts.

Every process holds the whole collection and a replica of the model. Each
mini-batch of the single-process schedule is split among the processes;
:class:`torch.nn.parallel.DistributedDataParallel` averages the gradients, so
all replicas take the same optimiser steps as one process would. The
embeddings of all samples, from which the target distribution is computed,
are computed in shards and gathered, so that every process derives the same
target and the same labels.
"""

import atexit
import importlib
import itertools
import os
import time

import torch


def launched_by_torchrun():
    """Whether this process is one of several started by ``torchrun``.

    Only the environment is read: ``WORLD_SIZE`` above 1.

    Returns
    -------
    bool
    """
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


class DataParallel:
    """This process's place in a data-parallel training, and the collectives it uses.

    Joins the default process group, initialising it from the environment
    that ``torchrun`` sets when nobody has: ``gloo`` for CPU training,
    ``nccl`` for CUDA. A group initialised here is destroyed by :meth:`close`
    (or, should training fail, at exit). On CUDA, a device without an index
    becomes ``cuda:LOCAL_RANK``, one GPU per process.

    Parameters
    ----------
    device : torch.device
        The device the estimator resolved.

    Attributes
    ----------
    rank : int
        This process's rank; rank 0 initialises the centres.
    world_size : int
        Number of processes.
    device : torch.device
        This process's training device.
    communication_seconds : float
        Wall time spent in the collectives called through this object
        (gradient averaging inside ``DistributedDataParallel`` excluded).
    """

    def __init__(self, device):
        import torch.distributed as dist

        self._dist = dist
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            if device.index >= torch.cuda.device_count():
                raise ValueError(
                    f"This process has LOCAL_RANK={device.index} but only {torch.cuda.device_count()} "
                    "CUDA device(s) are visible: start at most one process per GPU "
                    "(torchrun --nproc-per-node), or train on the CPU with device='cpu'."
                )
        if not dist.is_available():
            raise RuntimeError(
                "WORLD_SIZE > 1 asks for data-parallel training, but this PyTorch build has no "
                "torch.distributed; install a build with it, or run a single process."
            )
        self._owns_group = not dist.is_initialized()
        if self._owns_group:
            # torch.distributed.nn binds the default group into its
            # functions' default arguments when it is first imported, which
            # DistributedDataParallel does through torch._dynamo. Imported
            # after the group exists, it keeps the group alive past
            # destroy_process_group: gloo's worker threads then run into
            # interpreter shutdown, and one that releases a finished
            # collective's tensors there aborts the process (SIGABRT, about
            # one torchrun launch in a hundred). Imported first, it binds
            # no group.
            importlib.import_module("torch.distributed.nn")

            if device.type == "cuda":
                torch.cuda.set_device(device)
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            atexit.register(_destroy_process_group)
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.device = device
        self.communication_seconds = 0.0

    @property
    def is_main(self):
        """bool : Whether this is rank 0."""
        return self.rank == 0

    def wrap(self, module):
        """``module`` wrapped for gradient averaging across the processes.

        Parameters
        ----------
        module : torch.nn.Module
            The model, on this process's device. Rank 0's weights are
            broadcast to the others.

        Returns
        -------
        torch.nn.parallel.DistributedDataParallel
        """
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=device_ids)

    def rank_seed(self, seed):
        """A seed for random draws that should differ between the processes.

        Augmentations of the images of one batch are drawn in every process
        for its own part: seeded alike, every part would get the same
        sequence of transformations.

        Parameters
        ----------
        seed : int
            The seed a single process would use.

        Returns
        -------
        int
        """
        return seed + self.rank

    def split_batch(self, indices):
        """This process's part of a mini-batch and its share of the batch's loss.

        A batch is cut into ``world_size`` nearly equal, contiguous parts.
        Each process's mean loss is multiplied by ``share`` so that the
        average of the gradients over the processes equals the gradient of the
        whole batch's mean loss, whatever the part sizes.

        Parameters
        ----------
        indices : torch.Tensor of shape (batch,)
            The whole mini-batch, identical on every process.

        Returns
        -------
        local : torch.Tensor or None
            The indices this process trains on; ``None`` for a batch of fewer
            images than processes (the last of an epoch at most), which every
            process skips.
        share : float
            ``world_size * len(local) / len(indices)``.
        """
        if len(indices) < self.world_size:
            return None, 0.0
        local = indices.tensor_split(self.world_size)[self.rank]
        return local, self.world_size * len(local) / len(indices)

    def shard(self, n_samples):
        """The contiguous range of samples this process embeds.

        Parameters
        ----------
        n_samples : int
            Number of samples.

        Returns
        -------
        start, stop : int
        """
        bounds = self._shard_bounds(n_samples)
        return bounds[self.rank], bounds[self.rank + 1]

    def _shard_bounds(self, n_samples):
        return [n_samples * rank // self.world_size for rank in range(self.world_size + 1)]

    def gather_shards(self, local, n_samples):
        """Concatenate every process's shard of rows, in rank order, on every process.

        Parameters
        ----------
        local : torch.Tensor of shape (stop - start, ...)
            This process's rows, as cut by :meth:`shard`.
        n_samples : int
            Total number of rows.

        Returns
        -------
        torch.Tensor of shape (n_samples, ...)
        """
        bounds = self._shard_bounds(n_samples)
        sizes = [stop - start for start, stop in itertools.pairwise(bounds)]
        # all_gather needs tensors of one shape: pad every shard to the largest.
        padded = local.new_zeros((max(sizes), *local.shape[1:]))
        padded[: len(local)] = local
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        with self._timed():
            self._dist.all_gather(parts, padded)
        return torch.cat([part[:size] for part, size in zip(parts, sizes)])

    def check_sizes(self, n_samples, batch_size):
        """Refuse a collection or a batch too small to give every process a part.

        Parameters
        ----------
        n_samples : int
            Number of training images.
        batch_size : int
            Images per mini-batch, over all processes together.

        Raises
        ------
        ValueError
            If either is smaller than the number of processes.
        """
        for name, value in (("n_samples", n_samples), ("batch_size", batch_size)):
            if value < self.world_size:
                raise ValueError(
                    f"{name}={value} is smaller than the {self.world_size} processes of this "
                    f"data-parallel run (WORLD_SIZE={self.world_size}); every process needs a part. "
                    "Start fewer processes, or run a single one."
                )

    def total(self, tensor):
        """The sum of ``tensor`` over the processes, on every process.

        Parameters
        ----------
        tensor : torch.Tensor
            This process's value.

        Returns
        -------
        torch.Tensor
            A new tensor.
        """
        total = tensor.clone()
        with self._timed():
            self._dist.all_reduce(total)
        return total

    def average_gradient(self, parameter):
        """Replace the gradient of ``parameter`` by its mean over the processes, in place.

        For parameters that are trained outside the module wrapped by
        :meth:`wrap`.

        Parameters
        ----------
        parameter : torch.nn.Parameter
            A parameter whose ``grad`` has been computed.
        """
        with self._timed():
            self._dist.all_reduce(parameter.grad)
        parameter.grad /= self.world_size

    def average(self, tensor):
        """The mean of ``tensor`` over the processes, on every process.

        Parameters
        ----------
        tensor : torch.Tensor
            This process's value.

        Returns
        -------
        torch.Tensor
            A new tensor.
        """
        return self.total(tensor) / self.world_size

    def broadcast(self, tensor):
        """Rank 0's ``tensor``, on every process.

        Parameters
        ----------
        tensor : torch.Tensor
            Rank 0's value; on other ranks, a tensor of the same shape and
            dtype that is overwritten.

        Returns
        -------
        torch.Tensor
            ``tensor``, filled in place.
        """
        with self._timed():
            self._dist.broadcast(tensor, src=0)
        return tensor

    def broadcast_object(self, value):
        """Rank 0's picklable ``value``, on every process.

        Parameters
        ----------
        value : object
            Rank 0's value; ignored elsewhere.

        Returns
        -------
        object
        """
        box = [value]
        with self._timed():
            self._dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self):
        """Destroy the process group if it was initialised here, all processes together.

        Leaving it to the end of the interpreter lets one process close its
        connections while another is still running, and tears the group down
        while the interpreter itself is being torn down.
        """
        if self._owns_group and self._dist.is_initialized():
            self._dist.barrier()
            self._dist.destroy_process_group()

    def _timed(self):
        return _Stopwatch(self)


class _Stopwatch:
    """Adds the wall time of a block to ``owner.communication_seconds``."""

    def __init__(self, owner):
        self.owner = owner

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc_info):
        self.owner.communication_seconds += time.perf_counter() - self.start


def _destroy_process_group():
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
