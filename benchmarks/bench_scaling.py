"""Fit time against the number of images, split into pretraining and joint phase.

Fits DCEC with its default parameters on the first ``n`` images of USPS (9,298
handwritten digits, k = 10) for every ``n`` in ``--sizes``, along two paths:

* ``pixel``: the images, upsampled from 16x16 to ``--side`` (32 by default,
  so that every point costs what a collection of 32x32 photographs costs;
  16 keeps USPS as it is, a quarter of the cost), through the
  convolutional autoencoder;
* ``feature``: the features of :class:`~skdcec.PretrainedFeatures`
  (EfficientNet-Lite0, pooled) of the same images, through the dense
  autoencoder. They are extracted once, for the largest ``n``, and timed
  apart (images per second in the report); every ``n`` fits the first ``n``
  rows. ``--features-cache DIR`` keeps them, with their extraction time, for
  a later run.

Each fit's time is split into pretraining (the sum of the epochs' times in
``history_["pretrain"]``) and the rest (k-means start and joint phase), with
the epochs and mini-batches run, CPU time and NMI. Results go to a JSON and a
CSV file, and a log-log plot of fit time against ``n`` to a PNG.

Usage::

    python benchmarks/bench_scaling.py --usps ../shared/data/usps.npz \\
        --sizes 400 1250 5000 9298 --json scaling.json --csv scaling.csv --plot scaling.png
    python benchmarks/bench_scaling.py --plot-from scaling.json --plot docs/_static/scaling.png
    python benchmarks/bench_scaling.py --usps ../shared/data/usps.npz --side 16 --paths pixel \\
        --json scaling_pixel.json

The JSON is rewritten after every fit, so a stopped run keeps the points it
finished; ``--plot-from`` draws the plot of saved runs (the two paths can run
as two processes, ``--paths pixel`` and ``--paths feature``).
"""

import argparse
import csv
import json
import pathlib
import platform
import time
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import normalized_mutual_info_score

import skdcec
from skdcec import DeepConvEmbeddingClustering

SIDE = 32


def load_usps(path, side=SIDE):
    """USPS shuffled once (seed 0), upsampled to ``side`` x ``side`` uint8 images, and its labels."""
    data = np.load(path)
    images, labels = data["images"], data["labels"]
    order = np.random.default_rng(0).permutation(len(labels))
    images = torch.as_tensor(images[order], dtype=torch.float32)[:, None]
    resized = torch.nn.functional.interpolate(images, size=(side, side), mode="bilinear", align_corners=False)
    return resized[:, 0].round().clamp(0, 255).to(torch.uint8).numpy(), labels[order]


def timed_fit(X, y, n_clusters, seed, device):
    """Fit DCEC with its defaults; its times, iteration counts and NMI."""
    cpu_start, start = time.process_time(), time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        dcec = DeepConvEmbeddingClustering(n_clusters, random_state=seed, device=device).fit(X)
    seconds = time.perf_counter() - start
    pretrain = sum(record["seconds"] for record in dcec.history_["pretrain"])
    return {
        "fit_seconds": seconds,
        "pretrain_seconds": pretrain,
        "joint_seconds": seconds - pretrain,
        "cpu_seconds": time.process_time() - cpu_start,
        "pretrain_epochs": len(dcec.history_["pretrain"]),
        "joint_iterations": int(dcec.n_iter_),
        "target_updates": len(dcec.history_["clustering"]),
        "nmi": float(normalized_mutual_info_score(y, dcec.labels_)),
        "warnings": [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)],
    }


def write_outputs(report, args):
    if args.json:
        path = pathlib.Path(args.json)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(report, indent=2))
        partial.replace(path)
    if args.csv:
        fields = [
            "path",
            "n_samples",
            "features_seconds",
            "features_per_second",
            "fit_seconds",
            "pretrain_seconds",
            "joint_seconds",
            "cpu_seconds",
            "pretrain_epochs",
            "joint_iterations",
            "target_updates",
            "nmi",
        ]
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(report["points"])


def plot(report, path):
    """Log-log plot of fit time against n: total, pretraining and joint phase, per path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    styles = {"pixel": ("C0", "pixels (conv)"), "feature": ("C1", "features (dense)")}
    for kind, (color, label) in styles.items():
        points = sorted((p for p in report["points"] if p["path"] == kind), key=lambda p: p["n_samples"])
        if not points:
            continue
        n = [p["n_samples"] for p in points]
        ax.plot(n, [p["fit_seconds"] for p in points], "o-", color=color, label=f"{label}: fit")
        ax.plot(n, [p["cpu_seconds"] for p in points], "D-", color=color, lw=2.5, label="  fit, CPU seconds")
        ax.plot(
            n, [p["pretrain_seconds"] for p in points], "s--", color=color, alpha=0.6, label="  pretraining"
        )
        ax.plot(
            n, [p["joint_seconds"] for p in points], "^:", color=color, alpha=0.6, label="  k-means + joint"
        )
        if kind == "feature":
            rate = points[-1].get("features_per_second")
            if rate:
                ax.plot([], [], " ", label=f"  (extraction first: {rate:.0f} images/s)")
    all_n = np.array(sorted({p["n_samples"] for p in report["points"]}), dtype=float)
    if len(all_n):
        reference = report["points"][0]["fit_seconds"] * all_n / report["points"][0]["n_samples"]
        ax.plot(all_n, reference, color="grey", lw=0.8, label="linear in n")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"images ({report['data']})")
    ax.set_ylabel("seconds (wall-clock unless marked CPU)")
    ax.set_title(f"skdcec {report['skdcec']} defaults, {report['threads']} CPU thread(s)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--usps", help="path of usps.npz (images, labels)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[400, 1250, 5000, 9298])
    parser.add_argument("--side", type=int, default=SIDE, help="side the digits are resized to (16: as they are)")
    parser.add_argument("--paths", nargs="+", default=["pixel", "feature"], choices=["pixel", "feature"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument(
        "--features-cache", help="keep the features (and their extraction time) in this folder for later runs"
    )
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--csv", help="write the results here as CSV")
    parser.add_argument("--plot", help="write the log-log plot here (PNG)")
    parser.add_argument(
        "--plot-from", nargs="+", metavar="JSON", help="plot these saved reports instead of running"
    )
    args = parser.parse_args()
    if args.plot_from:
        reports = [json.loads(pathlib.Path(path).read_text()) for path in args.plot_from]
        merged = {**reports[0], "points": [point for report in reports for point in report["points"]]}
        plot(merged, args.plot)
        return
    if args.usps is None:
        raise SystemExit("--usps PATH is needed")
    if args.threads:
        torch.set_num_threads(args.threads)
    X, y = load_usps(args.usps, args.side)
    report = {
        "skdcec": skdcec.__version__,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "data": f"USPS resized to {args.side}x{args.side}, seed {args.seed}",
        "points": [],
    }
    for kind in args.paths:
        inputs, extraction = X, {}
        if kind == "feature":
            from skdcec import PretrainedFeatures

            largest = max(args.sizes)
            cache = None
            if args.features_cache:
                cache = pathlib.Path(args.features_cache) / f"usps{args.side}-lite0-{largest}"
            if cache is not None and cache.with_suffix(".npy").exists():
                inputs = np.load(cache.with_suffix(".npy"))
                extraction = json.loads(cache.with_suffix(".json").read_text())
            else:
                start = time.perf_counter()
                inputs = PretrainedFeatures(device=args.device).fit_transform(X[:largest])
                seconds = time.perf_counter() - start
                extraction = {"features_seconds": seconds, "features_per_second": largest / seconds}
                if cache is not None:
                    np.save(cache.with_suffix(".npy"), inputs)
                    cache.with_suffix(".json").write_text(json.dumps(extraction))
            print(f"features of {largest} images: {extraction['features_seconds']:.1f}s", flush=True)
        for n in sorted(args.sizes):
            images, labels = inputs[:n], y[:n]
            point = {"path": kind, "n_samples": n, **extraction}
            point.update(timed_fit(images, labels, 10, args.seed, args.device))
            report["points"].append(point)
            print(
                f"{kind} n={n}: fit {point['fit_seconds']:.1f}s "
                f"(pretraining {point['pretrain_seconds']:.1f}s, "
                f"{point['pretrain_epochs']} epochs; joint {point['joint_seconds']:.1f}s, "
                f"{point['joint_iterations']} mini-batches), NMI {point['nmi']:.3f}",
                flush=True,
            )
            write_outputs(report, args)
    if args.plot:
        plot(report, args.plot)


if __name__ == "__main__":
    main()
