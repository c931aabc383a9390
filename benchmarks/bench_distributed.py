"""Throughput of data-parallel training (torchrun, DistributedDataParallel) for 1, 2, ... processes.

For each number of processes it reports, from rank 0 and as the median of
``--repeats`` runs of each phase:

- pretraining images/s (our ``pretrain`` loop, whole mini-batches of
  ``--batch-size`` images split among the processes);
- clustering-phase images/s (joint training steps *and* the target
  recomputation on all samples every ``--update-interval`` steps);
- the communication share of each phase: wall time inside collectives over
  the phase's wall time. Two kinds are timed: the gradient all-reduce that
  ``DistributedDataParallel`` runs during the backward pass (timed by a
  communication hook from launch to completion, so time it overlaps with
  the rest of the backward pass counts too: an upper bound on what it
  costs), and the collectives our loops call themselves (all-gather of the
  embeddings, averaging of the centres' gradient and of the losses,
  broadcast of the stop verdict);
- images per CPU-second over all processes (rank 0's CPU time times the
  number of processes): the parallel efficiency, which, unlike wall-clock
  throughput, does not depend on how busy the machine is otherwise;
- the bytes all-reduced per step (the model's parameter count x 4).

One process runs the plain single-process code (no process group); more are
started with ``torchrun`` on this machine, on the CPU with the ``gloo``
backend unless ``--device cuda`` is given (then ``nccl``, one GPU per
process). Every process uses one thread.

Usage::

    python benchmarks/bench_distributed.py
    python benchmarks/bench_distributed.py --processes 1,2,4 --shape 64x64x3 --images 4096 --json ddp.json
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time


def _images(shape, n, seed=0):
    """Smooth uint8 images (blurred noise), so the autoencoder has something to learn."""
    import numpy as np

    rng = np.random.default_rng(seed)
    height, width, channels = shape
    coarse = rng.uniform(0, 255, size=(n, max(height // 4, 1), max(width // 4, 1), channels))
    repeated = coarse.repeat(4, axis=1).repeat(4, axis=2)[:, :height, :width]
    return np.ascontiguousarray(repeated.astype(np.uint8)).reshape(n, -1)


def _timed_allreduce_hook(seconds):
    """A DDP communication hook that averages gradients, adding each all-reduce's time to ``seconds``."""
    import torch.distributed as dist

    def hook(state, bucket):
        started = time.perf_counter()
        world_size = dist.get_world_size()
        future = dist.all_reduce(bucket.buffer(), async_op=True).get_future()

        def finish(done):
            seconds[0] += time.perf_counter() - started
            return done.value()[0] / world_size

        return future.then(finish)

    return hook


def worker(args):
    """Measure in this process (one of the torchrun processes, or the only one)."""
    import torch

    from skdcec._autoencoder import ConvAutoencoder
    from skdcec._clustering import ClusteringLayer
    from skdcec._data import ImageBatches
    from skdcec._device import make_generator, place_module, resolve_device
    from skdcec._distributed import DataParallel, launched_by_torchrun
    from skdcec._initialization import split_in_two
    from skdcec._training import embed, pretrain, train_clustering

    torch.set_num_threads(1)
    device = resolve_device(args.device)
    parallel = DataParallel(device) if launched_by_torchrun() else None
    if parallel is not None:
        device = parallel.device
    allreduce_seconds = [0.0]
    if parallel is not None:
        wrap = parallel.wrap

        def wrap_with_timer(module):
            model = wrap(module)
            model.register_comm_hook(None, _timed_allreduce_hook(allreduce_seconds))
            return model

        parallel.wrap = wrap_with_timer

    shape = tuple(int(side) for side in args.shape.split("x"))
    data = ImageBatches(_images(shape, args.images), shape, None, None, device)
    torch.manual_seed(0)
    model = place_module(ConvAutoencoder(shape), device)
    n_parameters = sum(parameter.numel() for parameter in model.parameters())

    def synchronise():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def phase(run):
        """The run with the median wall time of ``--repeats``."""
        runs = sorted(timed(run) for _ in range(args.repeats))
        return runs[(len(runs) - 1) // 2]

    def timed(run):
        allreduce_seconds[0] = 0.0
        if parallel is not None:
            parallel.communication_seconds = 0.0
            torch.distributed.barrier()
        synchronise()
        started, cpu_started = time.perf_counter(), time.process_time()
        run()
        synchronise()
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        collectives = 0.0 if parallel is None else parallel.communication_seconds
        return seconds, cpu_seconds, allreduce_seconds[0], collectives

    common = {"batch_size": args.batch_size, "learning_rate": 1e-3, "parallel": parallel}
    # Warm up kernels, allocators and the process group outside the timings.
    pretrain(model, data, epochs=1, generator=make_generator(1, torch.device("cpu")), **common)
    pretraining = phase(
        lambda: pretrain(
            model, data, epochs=args.epochs, generator=make_generator(0, torch.device("cpu")), **common
        )
    )

    z = embed(model, data, batch_size=1024, parallel=parallel)
    centers = z[torch.linspace(0, len(z) - 1, args.clusters).long()].cpu()
    layer = ClusteringLayer(centers).to(device)
    clustering = phase(
        lambda: train_clustering(
            model,
            layer,
            data,
            gamma=0.1,
            max_iter=args.max_iter,
            update_interval=args.update_interval,
            tol=0.0,
            generator=make_generator(0, torch.device("cpu")),
            inference_batch_size=1024,
            split_cluster=split_in_two,
            **common,
        )
    )
    if parallel is not None:
        parallel.close()
        if not parallel.is_main:
            return
    result = {
        "processes": 1 if parallel is None else parallel.world_size,
        "device": str(device),
        "shape": args.shape,
        "images": args.images,
        "batch_size": args.batch_size,
        "parameters": n_parameters,
        "allreduce_bytes_per_step": n_parameters * 4,
    }
    for name, (seconds, cpu_seconds, allreduce, collectives), images in (
        ("pretrain", pretraining, args.epochs * args.images),
        ("clustering", clustering, args.max_iter * args.batch_size),
    ):
        result[name] = {
            "seconds": seconds,
            "images_per_second": images / seconds,
            # Each process handles 1/N of the images: CPU time per image over
            # all processes, robust to a machine shared with other work.
            "images_per_cpu_second": images / (cpu_seconds * result["processes"]),
            "allreduce_seconds": allreduce,
            "other_collective_seconds": collectives,
            "communication_share": (allreduce + collectives) / seconds,
        }
    with open(args.result, "w") as file:
        json.dump(result, file)


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(args):
    """Start the measurement for every number of processes; print the table."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    options = [
        *("--shape", args.shape, "--images", str(args.images), "--batch-size", str(args.batch_size)),
        *("--epochs", str(args.epochs), "--max-iter", str(args.max_iter)),
        *("--update-interval", str(args.update_interval), "--clusters", str(args.clusters)),
        *("--device", args.device, "--repeats", str(args.repeats)),
    ]
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for processes in (int(count) for count in args.processes.split(",")):
            result_file = os.path.join(folder, f"{processes}.json")
            command = [__file__, "--worker", "--result", result_file, *options]
            if processes == 1:
                launch = [sys.executable, *command]
            else:
                launch = [
                    *(sys.executable, "-m", "torch.distributed.run", "--nnodes=1"),
                    *(f"--nproc-per-node={processes}", "--master-addr=127.0.0.1"),
                    *(f"--master-port={_free_port()}", *command),
                ]
            subprocess.run(launch, env=env, check=True)
            with open(result_file) as file:
                results.append(json.load(file))

    first = results[0]
    print(
        f"\n{first['shape']} images, {first['images']} of them, batch {first['batch_size']}, "
        f"{first['parameters']:,} parameters ({first['allreduce_bytes_per_step'] / 1e6:.2f} MB "
        f"all-reduced per step), device {args.device}, 1 thread per process\n"
    )
    header = (
        "| processes | pretrain img/s | speed-up | img/CPU-s | comm. share | "
        "clustering img/s | speed-up | img/CPU-s | comm. share (all-reduce + other) |"
    )
    print(header)
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for result in results:
        pretraining, clustering = result["pretrain"], result["clustering"]
        print(
            f"| {result['processes']} | {pretraining['images_per_second']:.0f} | "
            f"{pretraining['images_per_second'] / first['pretrain']['images_per_second']:.2f} | "
            f"{pretraining['images_per_cpu_second']:.0f} | "
            f"{pretraining['communication_share']:.0%} | {clustering['images_per_second']:.0f} | "
            f"{clustering['images_per_second'] / first['clustering']['images_per_second']:.2f} | "
            f"{clustering['images_per_cpu_second']:.0f} | "
            f"{clustering['communication_share']:.0%} "
            f"({clustering['allreduce_seconds'] / clustering['seconds']:.0%} + "
            f"{clustering['other_collective_seconds'] / clustering['seconds']:.0%}) |"
        )
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1,2", help="numbers of processes, comma-separated")
    parser.add_argument("--shape", default="28x28x1", help="HEIGHTxWIDTHxCHANNELS of the images")
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=2, help="timed pretraining epochs")
    parser.add_argument("--max-iter", type=int, default=64, help="timed joint training steps")
    parser.add_argument("--update-interval", type=int, default=32)
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each phase; the median is kept")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
