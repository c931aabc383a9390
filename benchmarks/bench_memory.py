"""Peak resident memory of fitting on a uint8 collection larger than its batches.

Writes a collection of ``--n-images`` RGB images of ``--side`` x ``--side``
pixels (default 20,000 x 128 x 128 x 3, about 1 GB) to a ``.npy`` file as
``load_images(..., out=...)`` would, opens it as a read-only memory map, and in
a fresh process fits ``DeepConvEmbeddingClustering`` on it, then predicts and
transforms it. The images are smooth blobs on noise: memory does not depend on
what they show.

It reports the process's peak resident memory (``VmHWM``, else ``ru_maxrss``) before the fit
(interpreter, torch, the open memory map) and after each stage, and the
increase that the fit caused; the goal is an increase under 600 MB for the
default collection. The short training settings (``--pretrain-epochs``,
``--max-iter``) keep the CPU run to minutes; the memory path is the same as a
long run's, since every epoch reads the whole collection batch by batch.

Usage::

    python benchmarks/bench_memory.py                       # 20,000 x 128 x 128 x 3
    python benchmarks/bench_memory.py --n-images 2000 --json memory.json
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np


def peak_rss_mb():
    """Peak resident memory of this process so far, in MB.

    ``VmHWM`` where Linux has it: ``ru_maxrss`` survives ``exec``, so a child
    started by a large parent would report the parent's peak.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb():
    """Resident memory of this process now, in MB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def write_collection(path, n_images, side, seed=0):
    """A uint8 ``(n, side, side, 3)`` collection in a ``.npy`` file, written in chunks."""
    rng = np.random.default_rng(seed)
    store = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n_images, side, side, 3))
    grid = np.linspace(-1, 1, side)
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    for start in range(0, n_images, 500):
        stop = min(start + 500, n_images)
        centres = rng.uniform(-0.6, 0.6, size=(stop - start, 2, 1, 1))
        blob = np.exp(-((yy - centres[:, 0]) ** 2 + (xx - centres[:, 1]) ** 2) / 0.1)
        colour = rng.uniform(0, 1, size=(stop - start, 1, 1, 3))
        noise = rng.uniform(0, 0.2, size=(stop - start, side, side, 3))
        store[start:stop] = (255 * np.clip(blob[..., None] * colour + noise, 0, 1)).astype(np.uint8)
    store.flush()
    del store


def measure(path, params):
    """Fit, predict and transform on the memory map at ``path``; runs in its own process."""
    import torch

    from skdcec import DeepConvEmbeddingClustering

    X = np.load(path, mmap_mode="r")
    record = {"baseline_peak_rss_mb": peak_rss_mb(), "collection_mb": X.nbytes / 2**20}
    start = time.perf_counter()
    est = DeepConvEmbeddingClustering(**params).fit(X)
    record["fit_seconds"] = time.perf_counter() - start
    record["after_fit_peak_rss_mb"] = peak_rss_mb()
    start = time.perf_counter()
    labels = est.predict(X)
    embedding = est.transform(X)
    record["predict_transform_seconds"] = time.perf_counter() - start
    record["after_predict_peak_rss_mb"] = peak_rss_mb()
    record["current_rss_mb"] = current_rss_mb()
    record["fit_increase_mb"] = record["after_fit_peak_rss_mb"] - record["baseline_peak_rss_mb"]
    record["total_increase_mb"] = record["after_predict_peak_rss_mb"] - record["baseline_peak_rss_mb"]
    record["cluster_sizes"] = np.bincount(labels, minlength=est.n_clusters).tolist()
    record["embedding_shape"] = list(embedding.shape)
    record["threads"] = torch.get_num_threads()
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-images", type=int, default=20_000)
    parser.add_argument("--side", type=int, default=128)
    parser.add_argument("--n-clusters", type=int, default=7)
    parser.add_argument("--pretrain-epochs", type=int, default=1)
    parser.add_argument("--max-iter", type=int, default=20)
    parser.add_argument("--update-interval", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--n-init", type=int, default=20)
    parser.add_argument("--folder", help="where to write the collection (default: a temporary folder)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    params = {
        "n_clusters": args.n_clusters,
        "pretrain_epochs": args.pretrain_epochs,
        "max_iter": args.max_iter,
        "update_interval": args.update_interval,
        "batch_size": args.batch_size,
        "n_init": args.n_init,
        "device": "cpu",
        "random_state": 0,
    }
    if args.measure:
        json.dump(measure(args.measure, params), sys.stdout)
        return

    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        path = os.path.join(folder, "collection.npy")
        write_collection(path, args.n_images, args.side)
        # A fresh process, so that writing the collection does not count.
        command = [sys.executable, __file__, "--measure", path] + sys.argv[1:]
        record = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    record.update(params=params, n_images=args.n_images, side=args.side, machine=platform.machine())
    print("| collection | fit | peak RSS before fit | fit increase | fit+predict+transform increase |")
    print("|---|---|---|---|---|")
    print(
        f"| {args.n_images} x {args.side} x {args.side} x 3 uint8 memmap ({record['collection_mb']:.0f} MB) "
        f"| {record['fit_seconds']:.0f} s | {record['baseline_peak_rss_mb']:.0f} MB "
        f"| {record['fit_increase_mb']:.0f} MB | {record['total_increase_mb']:.0f} MB |"
    )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(record, handle, indent=2)


if __name__ == "__main__":
    main()
