"""Training and inference throughput of skdcec, by image size, on whatever device is here.

For each image size (16x16 gray, 28x28 gray, 64x64 RGB, 128x128 RGB) it reports,
as medians over ``--repeats`` runs:

- pretraining images/s (our ``pretrain`` loop, uint8 data converted per batch);
- the same for a bare PyTorch loop over the same module, data layout and batch
  size (float tensor prepared in advance, shuffled, no bookkeeping), measured in
  the same process, and the overhead ratio ours / bare (goal >= 0.95);
- the same bare loop over a plain eager fp32 model in PyTorch's default NCHW
  layout, and our speed-up over it (what skdcec's layout and precision choices
  buy over the obvious implementation);
- clustering-phase images/s (joint training steps, target recomputation excluded);
- Q-recompute images/s (embedding and soft assignment of all samples);
- peak resident memory of the process (each size runs in its own process) and,
  on CUDA, peak GPU memory.

With ``--search`` it also times a 3-value ``GridSearchCV`` over ``n_clusters``
with and without the pretraining cache (``memory=``) and reports the speed-up.
When ClustPy is installed, its IDEC is timed on the same data at matching epochs.

``--precision`` runs our loop and the bare one at the estimator's
``precision`` (default ``"auto"``: bfloat16 on CUDA, float32 elsewhere);
``--precision bfloat16`` on a CPU with native bfloat16 (AVX512-BF16, AMX)
shows what ``DeepConvEmbeddingClustering(precision="bfloat16")`` buys there.

Usage::

    python benchmarks/bench_speed.py --json speed.json
    python benchmarks/bench_speed.py --sizes 28x28x1 --repeats 5 --search
    python benchmarks/bench_speed.py --sizes 28x28x1 --precision bfloat16
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import torch
from torch.nn import functional as F

SIZES = {"16x16x1": 8192, "28x28x1": 8192, "64x64x3": 2048, "128x128x3": 512}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _images(shape, n, seed=0):
    """Smooth uint8 images (blurred noise), so the autoencoder has something to learn."""
    rng = np.random.default_rng(seed)
    height, width, channels = shape
    coarse = rng.uniform(0, 255, size=(n, max(height // 4, 1), max(width // 4, 1), channels))
    repeated = coarse.repeat(4, axis=1).repeat(4, axis=2)[:, :height, :width]
    return np.ascontiguousarray(repeated.astype(np.uint8))


def measure_size(name, n_images, repeats, epochs, device_name, batch_size, precision_name="auto"):
    """All throughput figures for one image size, in this process."""
    from skdcec._autoencoder import ConvAutoencoder
    from skdcec._clustering import ClusteringLayer
    from skdcec._data import ImageBatches
    from skdcec._device import autocast_dtype, make_generator, memory_format, place_module, resolve_device
    from skdcec._training import embed, pretrain, train_clustering

    device = resolve_device(device_name)
    precision = autocast_dtype(precision_name, device)
    shape = tuple(int(v) for v in name.split("x"))
    images = _images(shape, n_images)
    flat = images.reshape(n_images, -1)
    data = ImageBatches(flat, shape, None, None, device)
    inference_batch = 2048 if device.type == "cuda" else 1024

    def fresh_model(plain=False):
        torch.manual_seed(0)
        model = ConvAutoencoder(shape)
        return model.to(device) if plain else place_module(model, device)

    def bare_loop(model, prepared, plain_precision):
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        _sync(device)
        start = time.perf_counter()
        for _ in range(epochs):
            order = torch.randperm(n_images, device=device)
            for i in range(0, n_images, batch_size):
                x = prepared[order[i : i + batch_size]]
                with torch.autocast(device.type, dtype=plain_precision, enabled=plain_precision is not None):
                    _, reconstruction = model(x)
                loss = F.mse_loss(reconstruction.float(), x)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        _sync(device)
        return epochs * n_images / (time.perf_counter() - start)

    # Warm up kernels and allocators once, outside the timings.
    pretrain(fresh_model(), data, epochs=1, batch_size=batch_size, learning_rate=1e-3,
             generator=make_generator(0, torch.device("cpu")), precision=precision)

    ours, bare, plain, cluster, recompute = [], [], [], [], []
    nchw = torch.from_numpy(flat).to(device).view(-1, *shape).permute(0, 3, 1, 2).float().div(255).contiguous()
    prepared = nchw.contiguous(memory_format=memory_format(device))
    for repeat in range(repeats):
        model = fresh_model()
        _sync(device)
        start = time.perf_counter()
        pretrain(model, data, epochs=epochs, batch_size=batch_size, learning_rate=1e-3,
                 generator=make_generator(repeat, torch.device("cpu")), precision=precision)
        _sync(device)
        ours.append(epochs * n_images / (time.perf_counter() - start))
        bare.append(bare_loop(fresh_model(), prepared, precision))
        plain.append(bare_loop(fresh_model(plain=True), nchw, None))

        _sync(device)
        start = time.perf_counter()
        z = embed(model, data, batch_size=inference_batch, precision=precision)
        _sync(device)
        recompute_seconds = time.perf_counter() - start
        recompute.append(n_images / recompute_seconds)

        layer = ClusteringLayer(z[:10].clone()).to(device)
        steps = max(epochs * n_images // batch_size, 20)
        _sync(device)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = train_clustering(
                model, layer, data, gamma=0.1, max_iter=steps, update_interval=steps + 1, tol=0.0,
                batch_size=batch_size, learning_rate=1e-3, generator=make_generator(repeat, torch.device("cpu")),
                inference_batch_size=inference_batch, precision=precision,
            )
        _sync(device)
        # Two full-data recomputations (the first and the final one) are not training.
        seconds = time.perf_counter() - start - 2 * recompute_seconds
        cluster.append(result.n_iter * batch_size / seconds)

    record = {
        "size": name,
        "device": str(device),
        "precision": str(precision or torch.float32),
        "threads": torch.get_num_threads(),
        "n_images": n_images,
        "batch_size": batch_size,
        "pretrain_images_per_s": statistics.median(ours),
        "bare_loop_images_per_s": statistics.median(bare),
        "overhead_ratio": statistics.median(o / b for o, b in zip(ours, bare)),
        "plain_eager_images_per_s": statistics.median(plain),
        "speedup_over_plain": statistics.median(o / p for o, p in zip(ours, plain)),
        "clustering_images_per_s": statistics.median(cluster),
        "q_recompute_images_per_s": statistics.median(recompute),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if device.type == "cuda":
        record["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    record["clustpy_idec"] = time_clustpy(images, epochs)
    return record


def time_clustpy(images, epochs):
    """Seconds/epoch of ClustPy's IDEC pretraining + clustering on the same data, if installed."""
    try:
        from clustpy.deep import IDEC
    except ImportError:
        return "clustpy not installed"
    flat = images.reshape(len(images), -1).astype(np.float32) / 255
    start = time.perf_counter()
    IDEC(n_clusters=10, pretrain_epochs=epochs, clustering_epochs=epochs, batch_size=256).fit(flat)
    return {"seconds": time.perf_counter() - start, "epochs": epochs}


def measure_search(device_name, repeats):
    """Wall time of a 3-value GridSearchCV over n_clusters, with and without memory=."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV

    from skdcec import DeepConvEmbeddingClustering

    X = load_digits().images
    params = dict(pretrain_epochs=60, max_iter=300, random_state=0, device=device_name)
    times = {"no cache": [], "memory=": []}
    for _ in range(repeats):
        for label in times:
            with tempfile.TemporaryDirectory() as cache, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                memory = cache if label == "memory=" else None
                search = GridSearchCV(
                    DeepConvEmbeddingClustering(memory=memory, **params), {"n_clusters": [8, 10, 12]}, cv=2
                )
                start = time.perf_counter()
                search.fit(X)
                times[label].append(time.perf_counter() - start)
    medians = {label: statistics.median(values) for label, values in times.items()}
    # Pretrainings: one per fit without the cache, one per fold (and the refit) with it;
    # their ratio bounds the speed-up, reached only when pretraining dominates a fit.
    fits = 3 * 2 + 1
    return {
        **medians,
        "speedup": medians["no cache"] / medians["memory="],
        "pretrainings": {"no cache": fits, "memory=": 2 + 1},
        "speedup_bound": fits / 3,
    }


def markdown(records):
    lines = [
        "| size | device | pretrain img/s | bare loop img/s | overhead ratio | plain eager img/s "
        "| speed-up over plain | clustering img/s | Q recompute img/s | peak RSS MB | peak GPU MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r['size']} | {r['device']} ({r['precision']}, {r['threads']} thr) "
            f"| {r['pretrain_images_per_s']:,.0f} | {r['bare_loop_images_per_s']:,.0f} "
            f"| {r['overhead_ratio']:.3f} | {r['plain_eager_images_per_s']:,.0f} "
            f"| {r['speedup_over_plain']:.2f} | {r['clustering_images_per_s']:,.0f} "
            f"| {r['q_recompute_images_per_s']:,.0f} | {r['peak_rss_mb']:,.0f} "
            f"| {r.get('peak_gpu_mb', float('nan')):,.0f} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "float32", "bfloat16"],
        help="the estimator's precision for our loop and the bare one (the plain loop stays float32)",
    )
    parser.add_argument("--images-scale", type=float, default=1.0, help="multiply the image counts")
    parser.add_argument("--search", action="store_true", help="also time GridSearchCV with memory=")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:
        n_images = int(SIZES[args.one] * args.images_scale)
        record = measure_size(
            args.one, n_images, args.repeats, args.epochs, args.device, args.batch_size, args.precision
        )
        sys.stdout.write(json.dumps(record) + "\n")
        return

    records = []
    for size in args.sizes:
        # One process per size, so that peak memory belongs to that size alone.
        command = [sys.executable, __file__, "--one", size, "--repeats", str(args.repeats),
                   "--epochs", str(args.epochs), "--device", args.device, "--precision", args.precision,
                   "--batch-size", str(args.batch_size), "--images-scale", str(args.images_scale)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        records.append(json.loads(output.strip().splitlines()[-1]))
        sys.stderr.write(f"{size}: {records[-1]}\n")
    report = {"torch": torch.__version__, "sizes": records}
    sys.stdout.write(markdown(records) + "\n")
    if args.search:
        report["search"] = measure_search(args.device, args.repeats)
        sys.stdout.write(f"\nGridSearchCV over n_clusters=[8, 10, 12], cv=2: {report['search']}\n")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
