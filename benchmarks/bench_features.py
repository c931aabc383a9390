"""Clustering what a pretrained network sees: KMeans and DCEC on backbone features.

For each data set the images go once through :class:`skdcec.PretrainedFeatures`
(``pooling="none"``: the backbone's whole last feature map, timed); the pooled
vector is the map's average over its positions. Then, for every seed:

- ``KMeans (features)``: KMeans(k, n_init=20) on the pooled vectors;
- ``PCA-50 + KMeans``: the same after PCA to 50 dimensions;
- ``DCEC dense (features)``: :class:`skdcec.DeepConvEmbeddingClustering` on the
  pooled vectors, where ``autoencoder="auto"`` picks the dense autoencoder
  (DELIUS's network), with ``AE + KMeans`` (the same pretraining, no joint
  phase) beside it;
- ``DCEC conv (feature map)``: the convolutional autoencoder on the map,
  ``image_shape=(h, w, channels)``, with its ``CAE + KMeans``.

NMI, ACC (Hungarian) and ARI against the labels, and the wall time of every
fit (feature extraction excluded; it is reported once per data set).

Data sets, all given by path, none shipped: ``--louvre FOLDER`` (one
subfolder per class, read with :func:`skdcec.load_images`, stretched to the
backbone's side), ``--coil20`` and ``--usps`` (npz files with ``images`` and
``labels``; the small grayscale images are resized on the device).

Usage::

    python benchmarks/bench_features.py --louvre ../shared/data/louvre-genres \\
        --coil20 ../shared/data/coil20.npz --usps ../shared/data/usps.npz \\
        --cache /tmp/features --json features.json

``--cache DIR`` keeps the extracted features (``DIR/<data set>-<backbone>-map.npy``)
so that a second run only clusters; they derive from the images, so keep them
out of the repository. ``--dense`` and ``--conv`` pass estimator parameters as
``name=value`` (Python literals), e.g. ``--dense embedding_dim=20 gamma=0.5``.
"""

import argparse
import ast
import json
import pathlib
import platform
import tempfile
import time
import warnings

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

import skdcec
from skdcec import DeepConvEmbeddingClustering, PretrainedFeatures, load_images
from skdcec.metrics import cluster_accuracy

METHODS = ("kmeans", "pca", "dense", "conv")
SIDES = {"efficientnet-lite0": 224, "efficientnet-lite1": 240, "efficientnet-lite2": 260}


def load_dataset(name, path, side):
    """Images and labels of one data set: a folder of class subfolders, or an npz file."""
    if name == "louvre":
        bunch = load_images(path, size=side, resize="stretch")
        classes = np.array([pathlib.Path(f).parent.name for f in bunch.filenames])
        return bunch.images, np.unique(classes, return_inverse=True)[1]
    data = np.load(path)
    return data["images"], data["labels"]


def feature_map(name, X, backbone, cache, device):
    """The backbone's feature map of ``X``, flattened channels-last, its shape and the seconds it took."""
    extractor = PretrainedFeatures(backbone, pooling="none", device=device).fit(X[:1])
    shape = extractor.feature_map_shape_
    path = pathlib.Path(cache, f"{name}-{backbone}-map.npy") if cache else None
    if path is not None and path.exists():
        return np.load(path, mmap_mode="r"), shape, None
    start = time.perf_counter()
    features = extractor.transform(X)
    seconds = time.perf_counter() - start
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, features)
    return features, shape, seconds


def scores(y, labels, seconds, **extra):
    return {
        "nmi": float(normalized_mutual_info_score(y, labels)),
        "acc": float(cluster_accuracy(y, labels)),
        "ari": float(adjusted_rand_score(y, labels)),
        "time": seconds,
        **extra,
    }


def dcec_and_its_start(X, y, k, seed, params, cache_dir):
    """DCEC with ``params``, and the k-means start on the same pretraining (``max_iter=0``, a cache hit)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        dcec = DeepConvEmbeddingClustering(k, random_state=seed, memory=cache_dir, **params).fit(X)
        seconds = time.perf_counter() - start
    pretrain_seconds = sum(record["seconds"] for record in dcec.history_["pretrain"])
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        begin = DeepConvEmbeddingClustering(
            k, random_state=seed, memory=cache_dir, **{**params, "max_iter": 0}
        ).fit(X)
    start_seconds = pretrain_seconds + time.perf_counter() - start
    return (
        scores(y, dcec.labels_, seconds, n_iter=dcec.n_iter_, converged=not caught),
        scores(y, begin.labels_, start_seconds),
    )


def run(name, X, y, side, args):
    features, (height, width, channels), extract_seconds = feature_map(
        name, X, args.backbone, args.cache, args.device
    )
    features = np.asarray(features, dtype=np.float32)
    pooled = features.reshape(len(features), height * width, channels).mean(axis=1)
    k = len(np.unique(y))
    entry = {
        "n_samples": len(y),
        "n_clusters": k,
        "input_side": side,
        "feature_map": [height, width, channels],
        "extraction_seconds": extract_seconds,
        "images_per_second": None if extract_seconds is None else len(y) / extract_seconds,
        "runs": [],
    }
    # The DCEC fits and their k-means starts share each pretraining through this cache.
    cache_dir = tempfile.mkdtemp(prefix="bench_features-")
    for seed in args.seeds:
        row = {}
        if "kmeans" in args.methods:
            start = time.perf_counter()
            labels = KMeans(k, n_init=20, random_state=seed).fit_predict(pooled)
            row["KMeans (features)"] = scores(y, labels, time.perf_counter() - start)
        if "pca" in args.methods:
            start = time.perf_counter()
            reduced = PCA(min(50, *pooled.shape), random_state=seed).fit_transform(pooled)
            labels = KMeans(k, n_init=20, random_state=seed).fit_predict(reduced)
            row["PCA-50 + KMeans"] = scores(y, labels, time.perf_counter() - start)
        if "dense" in args.methods:
            row["DCEC dense (features)"], row["AE + KMeans (features)"] = dcec_and_its_start(
                pooled, y, k, seed, args.dense, cache_dir
            )
        if "conv" in args.methods:
            params = {"image_shape": (height, width, channels), **args.conv}
            row["DCEC conv (feature map)"], row["CAE + KMeans (feature map)"] = dcec_and_its_start(
                features, y, k, seed, params, cache_dir
            )
        entry["runs"].append(row)
        report = ", ".join(f"{method} {r['nmi']:.3f} ({r['time']:.0f} s)" for method, r in row.items())
        print(f"{name} seed {seed}: {report}", flush=True)
    return entry


def markdown(name, entry):
    runs = entry["runs"]
    seeds = len(runs)
    seconds = entry["extraction_seconds"]
    extraction = "from the cache"
    if seconds is not None:
        extraction = f"{seconds:.0f} s, {entry['images_per_second']:.1f} images/s"
    lines = [
        f"\n### {name} (n={entry['n_samples']}, k={entry['n_clusters']}, {seeds} seeds; features "
        f"{extraction})\n",
        "| method | NMI per seed | NMI | ACC | ARI | time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for method in runs[0]:
        values = {key: [run[method][key] for run in runs] for key in ("nmi", "acc", "ari", "time")}
        per_seed = " / ".join(f"{v:.3f}" for v in values["nmi"])
        cells = [f"{np.mean(values[key]):.3f} ± {np.std(values[key]):.3f}" for key in ("nmi", "acc", "ari")]
        seconds = np.mean(values["time"])
        lines.append(f"| {method} | {per_seed} | " + " | ".join(cells) + f" | {seconds:.0f} |")
    return "\n".join(lines)


def parameters(pairs):
    return {key: ast.literal_eval(value) for key, value in (pair.split("=", 1) for pair in pairs)}


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--louvre", help="folder of class subfolders (the Louvre genres)")
    parser.add_argument("--coil20", help="path of coil20.npz (images, labels)")
    parser.add_argument("--usps", help="path of usps.npz (images, labels)")
    parser.add_argument("--backbone", default="efficientnet-lite0", choices=list(SIDES))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--dense", nargs="*", default=[], metavar="NAME=VALUE", help="dense DCEC parameters")
    parser.add_argument("--conv", nargs="*", default=[], metavar="NAME=VALUE", help="conv DCEC parameters")
    parser.add_argument("--cache", help="keep the extracted features in this folder")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    args.dense, args.conv = parameters(args.dense), parameters(args.conv)
    if args.threads:
        torch.set_num_threads(args.threads)
    paths = {"louvre": args.louvre, "coil20": args.coil20, "usps": args.usps}
    if not any(paths.values()):
        parser.error("give at least one data set: --louvre, --coil20 or --usps")
    report = {
        "skdcec": skdcec.__version__,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "backbone": args.backbone,
        "dense": args.dense,
        "conv": args.conv,
        "datasets": {},
    }
    side = SIDES[args.backbone]
    for name, path in paths.items():
        if path is None:
            continue
        X, y = load_dataset(name, path, side)
        report["datasets"][name] = run(name, X, y, side, args)
        print(markdown(name, report["datasets"][name]), flush=True)
        if args.json:
            pathlib.Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
