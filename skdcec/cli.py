"""The ``skdcec`` command: cluster a folder of images, predict, find similar images, run a demo.

Every command writes its files under a temporary name and renames them into
place when complete, refuses to replace existing output without
``--overwrite``, and reports a user's mistake as one line on standard error
with exit status 2. Progress goes to standard error: bars on a terminal (with
tqdm installed), plain lines otherwise, nothing with ``--quiet``.
"""

import argparse
import contextlib
import csv
import io
import json
import math
import os
import platform
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import PurePath

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from skdcec._version import __version__
from skdcec._device import resolve_device
from skdcec._estimator import DeepConvEmbeddingClustering
from skdcec._loading import load
from skdcec._persistence import (
    MANIFEST_FILE,
    atomic_folder,
    file_sha256,
    read_tensor_file,
    save,
    write_json,
)
from skdcec._text import shorten
from skdcec.images import load_images
from skdcec.metrics import clustering_scores

__all__ = ["main"]

PROG = "skdcec"
MODEL_FOLDER = "model"
SUMMARY_FILE = "summary.json"
COLLECTION_FILE = "collection.json"
COLLECTION_TENSORS_FILE = "collection.pt"
COLLECTION_FORMAT = "skdcec-collection"
COLLECTION_FORMAT_VERSION = 1
# Dimensions of the PCA of the pixels in which all values of k are scored alike.
PIXEL_PCA_COMPONENTS = 50
# Images the pixel PCA is fitted on; all images are projected.
PIXEL_PCA_SAMPLE = 2000
# The estimator's defaults, which the command's defaults are unless it says otherwise.
ESTIMATOR_DEFAULTS = DeepConvEmbeddingClustering().get_params()
# Plain progress lines are written at every tenth of the work.
PROGRESS_LINES = 10

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


class _UserError(Exception):
    """A mistake of the user's: reported as one line, with exit status 2."""


@dataclass
class _Settings:
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


# -------------------------------------------------------------- arguments


class _Parser(argparse.ArgumentParser):
    """An argument parser that reports a mistake as a single line."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _cluster_counts(text):
    counts = []
    for part in text.split(","):
        try:
            count = int(part)
        except ValueError:
            count = 0
        if count < 2:
            raise argparse.ArgumentTypeError(
                f"invalid value {text!r}: give a number of clusters of at least 2, or several "
                "separated by commas such as 3,5,7"
            )
        counts.append(count)
    return sorted(set(counts))


def _size(text):
    parts = text.lower().split("x")
    try:
        sides = [int(part) for part in parts]
    except ValueError:
        sides = []
    if len(sides) not in (1, 2) or min(sides) < 1:
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}: give a side in pixels such as 128, or HEIGHTxWIDTH such as 96x128"
        )
    return (sides[0], sides[-1])


def _integer(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: give an integer of at least {minimum}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def _epochs(text):
    """``auto`` or a number of epochs, for ``--pretrain-epochs``."""
    if text == "auto":
        return text
    try:
        return _integer(0)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}: give a number of epochs (0 or more) or auto"
        ) from None


def _add_training_options(parser, defaults):
    group = parser.add_argument_group("training")
    group.add_argument(
        "--pretrain-epochs",
        type=_epochs,
        default=defaults["pretrain_epochs"],
        metavar="N",
        help="epochs of autoencoder pretraining; auto is 200, or 500 with --augment (default: %(default)s)",
    )
    group.add_argument(
        "--max-iter",
        type=_integer(0),
        default=defaults["max_iter"],
        metavar="N",
        help="most mini-batches of joint clustering training (default: %(default)s)",
    )
    group.add_argument(
        "--update-interval",
        type=_integer(1),
        default=defaults["update_interval"],
        metavar="N",
        help="mini-batches between updates of the target distribution (default: %(default)s)",
    )
    group.add_argument(
        "--batch-size",
        type=_integer(1),
        default=defaults["batch_size"],
        metavar="N",
        help="images per mini-batch (default: %(default)s)",
    )
    group.add_argument(
        "--augment",
        action="store_true",
        help="train on randomly shifted and rotated copies of the images (colour ones also flipped, "
        "cropped and colour-jittered), as DEC-DA does, so that clusters follow content more than position",
    )
    group.add_argument(
        "--init",
        choices=["k-means", "spectral"],
        default=ESTIMATOR_DEFAULTS["init"],
        help="how the clusters start: k-means (DCEC's choice) or spectral clustering of the embeddings' "
        "nearest-neighbour graph, which keeps chains of gradually varying images whole "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="random seed; the same seed gives the same clusters on the same device (default: %(default)s)",
    )
    _add_device_option(group)


def _add_device_option(parser):
    parser.add_argument(
        "--device",
        default=ESTIMATOR_DEFAULTS["device"],
        help="'auto' (CUDA, then MPS, then CPU), 'cpu', 'cuda', 'cuda:1' or 'mps' (default: %(default)s)",
    )


def _add_output_options(parser):
    parser.add_argument("--overwrite", action="store_true", help="replace existing output")
    parser.add_argument(
        "--quiet", "-q", action="store_true", help="write nothing but errors to standard error"
    )


def _build_parser():
    parser = _Parser(
        prog=PROG,
        description="Cluster image collections with deep convolutional embedding clustering (DCEC).",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    cluster = commands.add_parser(
        "cluster",
        help="cluster a folder of images and write a results folder",
        description=(
            "Cluster the images in FOLDER (and its subfolders) and write RESULTS/: clusters.csv, "
            "summary.json, model/, a montage per cluster, prototypes.png, embedding.png and "
            "training.png. With several values of --n-clusters, the autoencoder is pretrained once, "
            "every k is fitted and scored (k_selection.csv, k_selection.png), and the full results "
            "are written for the k with the best silhouette in the embedding."
        ),
    )
    cluster.add_argument("folder", metavar="FOLDER", help="folder of image files")
    cluster.add_argument(
        "--n-clusters",
        "-k",
        type=_cluster_counts,
        required=True,
        metavar="K[,K...]",
        help="number of clusters, or several separated by commas, such as 3,5,7",
    )
    cluster.add_argument("--out", "-o", required=True, metavar="RESULTS", help="results folder to create")
    loading = cluster.add_argument_group("images")
    loading.add_argument(
        "--size",
        type=_size,
        default=(128, 128),
        metavar="PIXELS",
        help="size every image is resized to: SIDE or HEIGHTxWIDTH (default: 128)",
    )
    loading.add_argument(
        "--color", choices=("rgb", "gray"), default="rgb", help="channels (default: %(default)s)"
    )
    loading.add_argument(
        "--resize",
        choices=("stretch", "crop", "pad"),
        default="stretch",
        help="how images of another aspect ratio are fitted to --size (default: %(default)s)",
    )
    loading.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="leave out files that cannot be read, instead of stopping",
    )
    training = ("pretrain_epochs", "max_iter", "update_interval", "batch_size")
    _add_training_options(cluster, {name: ESTIMATOR_DEFAULTS[name] for name in training})
    cluster.add_argument(
        "--copy-to-folders",
        action="store_true",
        help="also copy (never move) every image into RESULTS/cluster_<k>/",
    )
    _add_output_options(cluster)
    cluster.set_defaults(handler=_cluster_command)

    predict = commands.add_parser(
        "predict",
        help="assign new images to the clusters of a saved model",
        description="Assign the images in FOLDER (or one image file) to the clusters of MODEL and write a CSV "
        "of path, cluster and confidence (the largest soft assignment).",
    )
    predict.add_argument("model", metavar="MODEL", help="model folder, such as RESULTS/model")
    predict.add_argument("folder", metavar="FOLDER", help="folder of image files, or one image file")
    predict.add_argument(
        "--out", "-o", metavar="FILE.csv", help="CSV file to create (default: standard output)"
    )
    predict.add_argument(
        "--resize",
        choices=("stretch", "crop", "pad"),
        help="how images are fitted to the model's size (default: as when the model was fitted)",
    )
    predict.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="leave out files that cannot be read, instead of stopping",
    )
    _add_device_option(predict)
    _add_output_options(predict)
    predict.set_defaults(handler=_predict_command)

    similar = commands.add_parser(
        "similar",
        help="find the images of the fitted collection nearest to an image",
        description="Find the images of MODEL's training collection nearest to IMAGE in the learned "
        "embedding; write them as CSV (rank, path, distance, cluster) to standard output and "
        "draw a contact sheet.",
    )
    similar.add_argument("model", metavar="MODEL", help="model folder written by 'skdcec cluster'")
    similar.add_argument("image", metavar="IMAGE", help="image file")
    similar.add_argument(
        "--top", type=_integer(1), default=12, metavar="N", help="images to find (default: 12)"
    )
    similar.add_argument(
        "--sheet", metavar="FILE.png", help="contact sheet to create (default: similar_<IMAGE name>.png)"
    )
    _add_device_option(similar)
    _add_output_options(similar)
    similar.set_defaults(handler=_similar_command)

    demo = commands.add_parser(
        "demo",
        help="run 'cluster' on scikit-learn's handwritten digits",
        description=(
            "Write scikit-learn's 1,797 handwritten digits as PNG files into DIR/images/ and run "
            "'skdcec cluster' on them into DIR/, with settings small enough to finish in about a "
            "minute on two CPU cores: {}x{} grayscale, {} pretraining epochs, at most {} joint "
            "mini-batches. summary.json also compares the clusters with the true digits."
        ).format(*DEMO_SETTINGS["size"], DEMO_SETTINGS["pretrain_epochs"], DEMO_SETTINGS["max_iter"]),
    )
    demo.add_argument("--out", "-o", required=True, metavar="DIR", help="folder to create")
    demo.add_argument(
        "--n-clusters",
        "-k",
        type=_cluster_counts,
        default=DEMO_SETTINGS["n_clusters"],
        metavar="K[,K...]",
        help="number of clusters, or several separated by commas (default: 10)",
    )
    _add_training_options(demo, DEMO_SETTINGS)
    _add_output_options(demo)
    demo.set_defaults(handler=_demo_command)
    return parser


def main(argv=None):
    """Run the ``skdcec`` command line.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments, without the program name; ``None`` reads ``sys.argv``.

    Returns
    -------
    int
        Exit status: 0 on success, 1 when training diverged, 2 for a user
        error, 130 when interrupted.

    Examples
    --------
    Cluster a folder of small PNG files, then assign them to the clusters of
    the saved model:

    >>> import os
    >>> import tempfile
    >>> from PIL import Image
    >>> from sklearn.datasets import load_sample_images
    >>> from skdcec.cli import main
    >>> work = tempfile.TemporaryDirectory()
    >>> images = os.path.join(work.name, "images")
    >>> os.mkdir(images)
    >>> for i, photo in enumerate(2 * load_sample_images().images):
    ...     for j in range(4):
    ...         crop = photo[40 * j : 40 * j + 32, 50 * i : 50 * i + 32]
    ...         Image.fromarray(crop).save(os.path.join(images, f"{i}_{j}.png"))
    >>> results = os.path.join(work.name, "results")
    >>> main(["cluster", images, "--n-clusters", "2", "--size", "16",
    ...       "--pretrain-epochs", "2", "--max-iter", "10", "--out", results,
    ...       "--quiet"])
    0
    >>> sorted(name for name in os.listdir(results) if not name.endswith(".png"))
    ['clusters.csv', 'model', 'summary.json']
    >>> csv = os.path.join(work.name, "assigned.csv")
    >>> main(["predict", results, images, "--out", csv, "--quiet"])
    0
    >>> with open(csv) as file:
    ...     print(file.readline().strip())
    path,cluster,confidence

    A mistake of the user's is reported on standard error, with status 2:

    >>> main(["predict", os.path.join(work.name, "no-model"), images, "--quiet"])
    2
    >>> work.cleanup()
    """
    args = _build_parser().parse_args(argv)
    reporter = _Reporter(quiet=args.quiet or not _writes_output())
    previous_handler = _interrupt_on_sigterm()
    try:
        args.handler(args, reporter)
    except (_UserError, OSError) as exc:
        sys.stderr.write(f"{PROG} {args.command}: error: {_one_line(exc)}\n")
        return 2
    except FloatingPointError as exc:
        sys.stderr.write(f"{PROG} {args.command}: error: {_one_line(exc)}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write(f"\n{PROG} {args.command}: interrupted; no output was written.\n")
        return 130
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
    return 0


def _writes_output():
    """Whether this process writes results and progress: all but ranks above 0 of a torchrun launch.

    Under torchrun every process loads the images and trains the model
    together; rank 0 alone writes.
    """
    return os.environ.get("RANK", "0") == "0"


def _one_line(exc):
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.strerror}: {exc.filename!r}"
    return " ".join(str(exc).split())


def _interrupt_on_sigterm():
    """Treat SIGTERM like Ctrl-C, so that temporary output is cleaned up."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


# --------------------------------------------------------------- progress


class _Reporter:
    """Messages and progress on standard error: bars on a terminal, lines elsewhere, or nothing."""

    def __init__(self, quiet, stream=None):
        self.quiet = quiet
        self.stream = sys.stderr if stream is None else stream
        self.notes = []

    def info(self, message):
        if not self.quiet:
            self.stream.write(message + "\n")
            self.stream.flush()

    def note(self, message):
        """A warning worth reading, also kept for summary.json."""
        self.notes.append(message)
        self.info(f"note: {message}")

    def progress(self, description, total, unit):
        if self.quiet:
            return _Silent()
        isatty = getattr(self.stream, "isatty", None)
        if isatty is not None and isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                return _Bar(
                    tqdm(total=total, desc=description, unit=unit, file=self.stream, dynamic_ncols=True)
                )
        return _Lines(self.stream, description, total, unit)


class _Silent:
    def update(self, done, status=""):
        pass

    def close(self):
        pass


class _Bar:
    def __init__(self, bar):
        self.bar = bar

    def update(self, done, status=""):
        if status:
            self.bar.set_postfix_str(status, refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self):
        self.bar.close()


class _Lines:
    def __init__(self, stream, description, total, unit):
        self.stream = stream
        self.description = description
        self.total = total
        self.unit = unit
        self.done = 0
        self.status = ""
        self.written_step = -1
        self.written_done = None

    def update(self, done, status=""):
        self.done, self.status = done, status
        step = math.floor(PROGRESS_LINES * done / self.total) if self.total else PROGRESS_LINES
        if step > self.written_step:
            self.written_step = step
            self._write()

    def close(self):
        if self.written_done != self.done:
            self._write()

    def _write(self):
        status = f", {self.status}" if self.status else ""
        self.stream.write(f"{self.description}: {self.unit} {self.done}/{self.total}{status}\n")
        self.stream.flush()
        self.written_done = self.done


class _TrainingProgress:
    """Turns the estimator's progress records into progress displays."""

    def __init__(self, reporter, label, max_iter):
        self.reporter = reporter
        self.label = label
        self.max_iter = max_iter
        self.pretraining = None
        self.clustering = None

    def __call__(self, stage, record, pretrain_epochs):
        if stage == "pretrain":
            if self.pretraining is None:
                self.pretraining = self.reporter.progress(
                    f"{self.label}pretraining", pretrain_epochs, "epoch"
                )
            self.pretraining.update(record["epoch"], f"loss {record['reconstruction_loss']:.4g}")
            return
        if self.clustering is None:
            if self.pretraining is not None:
                self.pretraining.close()
            elif pretrain_epochs:
                self.reporter.info(
                    f"{self.label}pretraining: reused the autoencoder pretrained for the first k"
                )
            self.clustering = self.reporter.progress(f"{self.label}clustering", self.max_iter, "mini-batch")
        change = record["label_change_fraction"]
        self.clustering.update(record["iteration"], "" if change is None else f"labels changed {change:.1%}")

    def close(self):
        if self.pretraining is not None and self.clustering is None:
            self.pretraining.close()
        if self.clustering is not None:
            self.clustering.close()


class _ReportingClusterer(DeepConvEmbeddingClustering):
    """The estimator, sending its progress records to the command line's displays.

    ``verbose=1`` makes the estimator call ``_report`` after every
    pretraining epoch and every target update.
    """

    progress = None

    def _report(self, stage, record, pretrain_epochs):
        if self.progress is not None:
            self.progress(stage, record, pretrain_epochs)


@contextlib.contextmanager
def _notes_from_warnings(reporter, prefix=""):
    """Turn skdcec's warnings raised in the block into notes; pass other warnings on."""
    package = os.path.dirname(os.path.abspath(__file__))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    seen = set()
    for warning in caught:
        ours = issubclass(warning.category, ConvergenceWarning) or (
            issubclass(warning.category, UserWarning)
            and os.path.abspath(warning.filename).startswith(package)
        )
        if not ours:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
            continue
        message = prefix + " ".join(str(warning.message).split())
        if message not in seen:
            seen.add(message)
            reporter.note(message)


# ----------------------------------------------------------------- cluster


def _cluster_command(args, reporter):
    folder = args.folder
    if not os.path.exists(folder):
        raise _UserError(f"the folder {folder!r} does not exist.")
    if not os.path.isdir(folder):
        raise _UserError(f"{folder!r} is not a folder; give the folder that holds the images.")
    if _is_inside(args.out, folder):
        raise _UserError(
            f"--out {args.out!r} is inside the input folder {folder!r}, where its pictures would be "
            "read as images by the next run; choose a folder outside it."
        )
    if args.overwrite and os.path.lexists(args.out) and _is_inside(folder, args.out):
        raise _UserError(
            f"the input folder {folder!r} is inside --out {args.out!r}, which --overwrite would delete; "
            "choose another --out."
        )
    _check_device(args.device)
    _check_new_output(args.out, args.overwrite, _is_results_folder, "--out")
    settings = _settings(args, args.n_clusters, args.size, args.color, args.resize, args.skip_unreadable)
    settings.copy_to_folders = args.copy_to_folders
    if not _writes_output():
        _cluster_into(None, folder, settings, reporter)
        return
    with atomic_folder(args.out, overwrite=args.overwrite, replaceable=_is_results_folder) as work:
        _cluster_into(work, folder, settings, reporter)
    reporter.info(f"Results are in {args.out}")


def _settings(args, n_clusters, size, color, resize, skip_unreadable):
    return _Settings(
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
    )


def _check_device(device):
    try:
        resolve_device(device)
    except ValueError as exc:
        raise _UserError(f"--device {device}: {exc}") from exc


def _is_inside(path, folder):
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


def _is_results_folder(path):
    return os.path.isdir(path) and (not os.listdir(path) or os.path.isfile(os.path.join(path, SUMMARY_FILE)))


def _check_new_output(path, overwrite, replaceable, option):
    if os.path.lexists(path):
        if not overwrite:
            raise _UserError(
                f"{path!r} already exists; pass --overwrite to replace it, or choose another {option}."
            )
        if not replaceable(path):
            raise _UserError(
                f"{path!r} exists and was not written by skdcec; refusing to replace it. "
                f"Choose another {option}."
            )
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise _UserError(f"cannot create {path!r}: the folder {parent!r} does not exist.")


def _cluster_into(work, folder, settings, reporter, *, final_folder=None, true_labels=None):
    """Load, fit every k, and write the results of the best one into ``work``.

    ``final_folder`` is where ``folder`` will be once ``work`` is renamed, when
    it lies inside ``work``. With ``work=None`` nothing is written: a
    process of a torchrun launch that helps rank 0 train.
    """
    final_folder = folder if final_folder is None else final_folder
    started = time.perf_counter()
    timings = {}
    collection = _load_collection(
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
        raise _UserError(
            f"--n-clusters {','.join(map(str, too_many))} asks for more clusters than the {n_images} "
            f"images found in {final_folder!r}; use at most {n_images}."
        )

    pixel_points, n_components = _pixel_pca(images, settings.seed)
    several = len(settings.n_clusters) > 1
    fits, (estimator, record, embedding, proba) = _fit_every_k(
        images, pixel_points, settings, reporter, timings
    )
    if work is None:
        return
    if several:
        reporter.info(
            f"Best k by silhouette in the embedding: {record['n_clusters']} "
            f"(silhouette {_format(record['silhouette_embedding'])})"
        )

    writing_started = time.perf_counter()
    labels = proba.argmax(axis=1)
    confidence = proba.max(axis=1)
    relative_paths = [_relative(path, folder) for path in collection.filenames]
    files = []
    _write_clusters_csv(os.path.join(work, "clusters.csv"), relative_paths, labels, confidence)
    files.append("clusters.csv")
    if several:
        _write_k_selection_csv(os.path.join(work, "k_selection.csv"), fits)
        files.append("k_selection.csv")

    estimator.set_params(verbose=0)
    model_folder = os.path.join(work, MODEL_FOLDER)
    save(estimator, model_folder)
    _write_collection(model_folder, work, folder, relative_paths, embedding, labels, settings)
    files.append(f"{MODEL_FOLDER}/")

    files += _write_pictures(
        work, estimator, images, embedding, relative_paths, fits if several else None, record, reporter
    )
    if settings.copy_to_folders:
        _copy_to_folders(work, folder, collection.filenames, labels, reporter)
        files.append("cluster_<k>/")
    timings["writing"] = time.perf_counter() - writing_started
    timings["total"] = time.perf_counter() - started

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
            "pixel_pca": {
                "silhouette": record["silhouette_pixel_pca"],
                "calinski_harabasz": record["calinski_harabasz_pixel_pca"],
                "n_components": n_components,
                "note": "a space shared by every k (and by other methods): PCA of the pixels in [0, 1]",
            },
        },
        "n_iter": estimator.n_iter_,
        "k_selection": fits,
        "settings": {**asdict(settings), "size": list(settings.size)},
        "estimator_params": _plain_params(estimator),
        "device": str(estimator.device_),
        "versions": _versions(),
        "timings_seconds": _rounded(timings),
        "files": [*files, SUMMARY_FILE],
        "notes": reporter.notes,
    }
    if true_labels is not None:
        summary["demo"] = _demo_scores(collection.filenames, labels, true_labels)
        reporter.info(
            f"Against the true digits: NMI {summary['demo']['nmi']:.3f}, "
            f"accuracy {summary['demo']['cluster_accuracy']:.3f}"
        )
    write_json(os.path.join(work, SUMMARY_FILE), summary)


def _fit_every_k(images, pixel_points, settings, reporter, timings):
    """Fit and score every k; return the scores and the best fit by silhouette in the embedding.

    With several values of k, the pretrained autoencoder is cached and reused:
    pretraining depends on the data and the seed, not on k.
    """
    several = len(settings.n_clusters) > 1
    fits = []
    best = None
    timings["fitting"] = {}
    timings["scoring"] = 0.0
    with _pretraining_cache(several) as memory:
        for k in settings.n_clusters:
            label = f"k={k}: " if several else ""
            started = time.perf_counter()
            estimator = _fit(images, k, settings, memory, reporter, label)
            timings["fitting"][str(k)] = time.perf_counter() - started
            started = time.perf_counter()
            embedding = estimator.transform(images)
            proba = estimator.predict_proba(images)
            labels = proba.argmax(axis=1)
            silhouette, calinski_harabasz = clustering_scores(embedding, labels)
            shared_silhouette, shared_calinski_harabasz = clustering_scores(pixel_points, labels)
            timings["scoring"] += time.perf_counter() - started
            record = {
                "n_clusters": k,
                "silhouette_embedding": silhouette,
                "calinski_harabasz_embedding": calinski_harabasz,
                "silhouette_pixel_pca": shared_silhouette,
                "calinski_harabasz_pixel_pca": shared_calinski_harabasz,
                "n_iter": estimator.n_iter_,
                "fit_seconds": round(timings["fitting"][str(k)], 3),
            }
            fits.append(record)
            reporter.info(
                f"{label}silhouette {_format(silhouette)} in the embedding, {_format(shared_silhouette)} in "
                f"the pixel PCA space; Calinski-Harabasz {_format(calinski_harabasz)} and "
                f"{_format(shared_calinski_harabasz)}"
            )
            # Ties go to the smaller k, which comes first.
            if best is None or _better(silhouette, best[1]["silhouette_embedding"]):
                best = (estimator, record, embedding, proba)
    return fits, best


def _better(score, best_score):
    if score is None:
        return False
    return best_score is None or score > best_score


def _format(value):
    return "undefined" if value is None else f"{value:.3g}"


def _rounded(timings):
    if isinstance(timings, dict):
        return {key: _rounded(value) for key, value in timings.items()}
    return round(timings, 3)


def _load_collection(source, reporter, *, size, color, resize, skip_unreadable=False, shown_as=None):
    reporter.info(f"Loading images from {source if shown_as is None else shown_as} ...")
    started = time.perf_counter()
    display = None

    def show_progress(n_done, n_total):
        nonlocal display
        if display is None:
            display = reporter.progress("loading", n_total, "image")
        display.update(n_done)

    with _notes_from_warnings(reporter):
        try:
            collection = load_images(
                source,
                size=size,
                color=color,
                resize=resize,
                on_error="skip" if skip_unreadable else "raise",
                n_jobs=-1,
                progress=show_progress,
            )
        except (TypeError, ValueError) as exc:
            raise _UserError(str(exc)) from exc
        finally:
            if display is not None:
                display.close()
    n_images = len(collection.filenames)
    reporter.info(
        f"Loaded {n_images} image{'' if n_images == 1 else 's'} as {size[0]}x{size[1]} {color} "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return collection


@contextlib.contextmanager
def _pretraining_cache(needed):
    """A throwaway joblib cache folder, so that several values of k pretrain once."""
    if not needed:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="skdcec-pretraining-") as folder:
        yield folder


def _fit(images, n_clusters, settings, memory, reporter, label):
    estimator = _ReportingClusterer(
        n_clusters,
        pretrain_epochs=settings.pretrain_epochs,
        max_iter=settings.max_iter,
        update_interval=settings.update_interval,
        batch_size=settings.batch_size,
        augment=settings.augment,
        init=settings.init,
        device=settings.device,
        memory=memory,
        random_state=settings.seed,
        verbose=1,
    )
    estimator.progress = _TrainingProgress(reporter, label, settings.max_iter)
    try:
        with _notes_from_warnings(reporter, prefix=label):
            estimator.fit(images)
    except ValueError as exc:
        raise _UserError(str(exc)) from exc
    finally:
        estimator.progress.close()
        estimator.progress = None
    return estimator


def _pixel_pca(images, seed):
    """The images projected on the principal components of their pixels, in [0, 1]."""
    from sklearn.decomposition import PCA

    n_images = len(images)
    flat = images.reshape(n_images, -1)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n_images, size=min(n_images, PIXEL_PCA_SAMPLE), replace=False))
    n_components = min(PIXEL_PCA_COMPONENTS, len(sample), flat.shape[1])
    pca = PCA(n_components=n_components, random_state=0).fit(flat[sample].astype(np.float32) / 255)
    chunk = 1024
    points = np.concatenate(
        [
            pca.transform(flat[start : start + chunk].astype(np.float32) / 255)
            for start in range(0, n_images, chunk)
        ]
    )
    return points.astype(np.float64), n_components


def _relative(path, root):
    """``path`` relative to ``root``, with forward slashes."""
    return PurePath(os.path.relpath(os.path.abspath(path), os.path.abspath(root))).as_posix()


def _write_csv(path, header, rows):
    with open(path, "x", newline="", encoding="utf-8") as file:
        _csv_rows(file, header, rows)


def _csv_rows(file, header, rows):
    writer = csv.writer(file, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)


def _write_clusters_csv(path, paths, labels, confidence):
    rows = [(name, int(label), f"{value:.6f}") for name, label, value in zip(paths, labels, confidence)]
    _write_csv(path, ("path", "cluster", "confidence"), rows)


def _write_k_selection_csv(path, fits):
    header = list(fits[0])
    rows = [["" if record[key] is None else record[key] for key in header] for record in fits]
    _write_csv(path, header, rows)


def _write_collection(model_folder, work, folder, relative_paths, embedding, labels, settings):
    """Keep the training images' paths and embeddings beside the model, for ``similar``."""
    root = os.path.abspath(folder)
    if _is_inside(root, work):
        # The demo's images live in the results folder, which is renamed at the end.
        root = os.path.relpath(root, model_folder)
    tensors_path = os.path.join(model_folder, COLLECTION_TENSORS_FILE)
    torch.save(
        {
            "embedding": torch.from_numpy(np.ascontiguousarray(embedding, dtype=np.float32)),
            "labels": torch.from_numpy(np.asarray(labels, dtype=np.int64)),
        },
        tensors_path,
    )
    write_json(
        os.path.join(model_folder, COLLECTION_FILE),
        {
            "format": COLLECTION_FORMAT,
            "format_version": COLLECTION_FORMAT_VERSION,
            "root": root,
            "paths": relative_paths,
            "loading": {"size": list(settings.size), "color": settings.color, "resize": settings.resize},
            "files": {COLLECTION_TENSORS_FILE: {"sha256": file_sha256(tensors_path)}},
        },
    )


def _plain_params(estimator):
    params = estimator.get_params(deep=False)
    params["memory"] = None
    params["device"] = str(params["device"])
    return params


def _versions():
    import PIL
    import sklearn

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


def _pyplot_for_files(reporter):
    """pyplot on the Agg backend, or None (with a note) when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        reporter.note('pictures were not drawn: matplotlib is not installed; pip install "skdcec[plot]"')
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(plt, fig, path):
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _write_pictures(work, estimator, images, embedding, relative_paths, fits, record, reporter):
    plt = _pyplot_for_files(reporter)
    if plt is None:
        return []
    from skdcec import plotting

    files = []
    for cluster in range(estimator.n_clusters):
        name = f"montage_{cluster}.png"
        fig = plotting.plot_cluster_montage(
            estimator, images, cluster, embedding=embedding, filenames=relative_paths
        )
        _save_figure(plt, fig, os.path.join(work, name))
        files.append(name)
    _save_figure(plt, plotting.plot_prototypes(estimator), os.path.join(work, "prototypes.png"))
    _save_figure(
        plt,
        plotting.plot_embedding(estimator, images, embedding=embedding),
        os.path.join(work, "embedding.png"),
    )
    _save_figure(plt, plotting.plot_training_history(estimator), os.path.join(work, "training.png"))
    files += ["prototypes.png", "embedding.png", "training.png"]
    if fits is not None:
        fig = plotting.plot_k_selection(
            [fit["n_clusters"] for fit in fits],
            [fit["silhouette_embedding"] for fit in fits],
            [fit["calinski_harabasz_embedding"] for fit in fits],
            shared_silhouette=[fit["silhouette_pixel_pca"] for fit in fits],
            shared_calinski_harabasz=[fit["calinski_harabasz_pixel_pca"] for fit in fits],
            shared_label="in a PCA of the pixels",
            best=record["n_clusters"],
        )
        _save_figure(plt, fig, os.path.join(work, "k_selection.png"))
        files.append("k_selection.png")
    return files


def _copy_to_folders(work, folder, filenames, labels, reporter):
    """Copy every image into ``cluster_<k>/``, keeping its path below ``folder``.

    Files that resolve outside ``folder`` (through a symbolic link) are not
    copied: the results never take in files from elsewhere.
    """
    root = os.path.realpath(folder)
    outside = []
    for path, label in zip(filenames, labels):
        real = os.path.realpath(path)
        if os.path.commonpath([root, real]) != root:
            outside.append(path)
            continue
        target = os.path.join(work, f"cluster_{label}", _relative(path, folder))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        # Copy from the resolved path, refusing a link swapped in since.
        with open(real, "rb", opener=_open_no_follow) as source, open(target, "xb") as copy:
            shutil.copyfileobj(source, copy)
            status = os.fstat(source.fileno())
        os.utime(target, ns=(status.st_atime_ns, status.st_mtime_ns))
    if outside:
        reporter.note(
            f"{len(outside)} images were not copied into cluster folders because they are symbolic "
            f"links to files outside {folder!r}, such as {outside[0]!r}"
        )


def _open_no_follow(path, flags):
    return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0))


# ----------------------------------------------------------------- predict


def _load_model(path, device):
    _check_device(device)
    inside = os.path.join(path, MODEL_FOLDER)
    if os.path.isfile(os.path.join(inside, MANIFEST_FILE)) and not os.path.exists(
        os.path.join(path, MANIFEST_FILE)
    ):
        # A results folder of 'cluster': its model.
        path = inside
    try:
        estimator = load(path, device=device)
    except (FileNotFoundError, ValueError) as exc:
        raise _UserError(str(exc)) from exc
    return estimator, _read_collection(path, estimator), path


def _read_collection(model_folder, estimator):
    """The training collection stored by ``cluster`` beside the model, or None."""
    manifest_path = os.path.join(model_folder, COLLECTION_FILE)
    if not os.path.isfile(manifest_path):
        return None
    try:
        with open(manifest_path, encoding="utf-8") as file:
            manifest = json.load(file)
        if manifest.get("format") != COLLECTION_FORMAT:
            raise ValueError(f"its format is {manifest.get('format')!r}, not {COLLECTION_FORMAT!r}")
        if (
            not isinstance(manifest.get("format_version"), int)
            or manifest["format_version"] > COLLECTION_FORMAT_VERSION
        ):
            raise ValueError(
                f"it has format version {manifest.get('format_version')!r}; this skdcec {__version__} reads "
                f"versions up to {COLLECTION_FORMAT_VERSION}"
            )
        paths = manifest["paths"]
        root = os.path.normpath(os.path.join(model_folder, manifest["root"]))
        loading = manifest["loading"]
        size = tuple(int(side) for side in loading["size"])
        color, resize = loading["color"], loading["resize"]
        checksum = manifest["files"][COLLECTION_TENSORS_FILE]["sha256"]
        if not (isinstance(paths, list) and all(isinstance(path, str) for path in paths)):
            raise ValueError("its paths are not a list of strings")
    except (
        OSError,
        json.JSONDecodeError,
        UnicodeDecodeError,
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
    ) as exc:
        raise _UserError(f"{manifest_path!r} is not a valid collection file: {exc}") from exc
    try:
        tensors = read_tensor_file(os.path.join(model_folder, COLLECTION_TENSORS_FILE), checksum)
        embedding = tensors["embedding"].numpy().astype(np.float64)
        labels = tensors["labels"].numpy().astype(np.intp)
    except (KeyError, ValueError) as exc:
        raise _UserError(f"the collection in {model_folder!r} cannot be used: {exc}") from exc
    if embedding.shape != (len(paths), estimator.embedding_dim) or labels.shape != (len(paths),):
        raise _UserError(f"the collection in {model_folder!r} does not match its model; it is corrupt.")
    return {
        "root": root,
        "paths": paths,
        "size": size,
        "color": color,
        "resize": resize,
        "embedding": embedding,
        "labels": labels,
    }


def _model_loading(estimator, collection, resize):
    """How to read images for ``estimator``: its size and channels, as when it was fitted."""
    height, width, channels = estimator.image_shape_
    if estimator.input_dtype_ != np.uint8:
        raise _UserError(
            f"the model was fitted on {np.dtype(estimator.input_dtype_).name} arrays, whose scale image "
            "files do not tell; the command line needs a model fitted on uint8 images, such as one "
            "written by 'skdcec cluster'."
        )
    if channels not in (1, 3):
        raise _UserError(
            f"the model was fitted on images with {channels} channels; image files are read as "
            "grayscale (1 channel) or RGB (3 channels)."
        )
    if resize is None:
        resize = collection["resize"] if collection is not None else "stretch"
    return {"size": (height, width), "color": "gray" if channels == 1 else "rgb", "resize": resize}


def _predict_command(args, reporter):
    if args.out is not None:
        _check_new_output(args.out, args.overwrite, os.path.isfile, "--out")
    if not os.path.exists(args.folder):
        raise _UserError(f"{args.folder!r} does not exist; give a folder of images or an image file.")
    estimator, collection, _ = _load_model(args.model, args.device)
    loading = _model_loading(estimator, collection, args.resize)
    images = _load_collection(args.folder, reporter, skip_unreadable=args.skip_unreadable, **loading)
    proba = estimator.predict_proba(images.images)
    root = args.folder if os.path.isdir(args.folder) else os.path.dirname(os.path.abspath(args.folder))
    paths = [_relative(path, root) for path in images.filenames]
    rows = [
        (path, int(label), f"{value:.6f}") for path, label, value in zip(paths, proba.argmax(1), proba.max(1))
    ]
    header = ("path", "cluster", "confidence")
    if args.out is None:
        _csv_rows(sys.stdout, header, rows)
        sys.stdout.flush()
        return
    text = io.StringIO()
    _csv_rows(text, header, rows)
    _write_file_atomically(args.out, text.getvalue().encode("utf-8"))
    sizes = np.bincount(proba.argmax(1), minlength=estimator.n_clusters)
    reporter.info(f"Wrote {args.out}: {len(rows)} images, cluster sizes {sizes.tolist()}")


def _write_file_atomically(path, data):
    """Write ``data`` to a hidden temporary file next to ``path``, then rename it to ``path``."""
    folder, name = os.path.split(os.path.abspath(path))
    unfinished = os.path.join(folder, f".{name}.{secrets.token_hex(8)}.partial")
    try:
        with open(unfinished, "xb") as file:
            file.write(data)
        os.replace(unfinished, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(unfinished)
        raise


# ----------------------------------------------------------------- similar


def _similar_command(args, reporter):
    if not os.path.isfile(args.image):
        raise _UserError(f"{args.image!r} is not an image file.")
    sheet = args.sheet
    if sheet is None:
        sheet = f"similar_{os.path.splitext(os.path.basename(args.image))[0]}.png"
    _check_new_output(sheet, args.overwrite, os.path.isfile, "--sheet")
    estimator, collection, model = _load_model(args.model, args.device)
    if collection is None:
        raise _UserError(
            f"{model!r} holds no collection of training images; 'similar' needs a model folder "
            "written by 'skdcec cluster'."
        )
    loading = _model_loading(estimator, collection, None)
    query = _load_collection(args.image, reporter, **loading)
    point = estimator.transform(query.images)[0]
    distances = np.linalg.norm(collection["embedding"] - point, axis=1)
    top = min(args.top, len(distances))
    nearest = np.argsort(distances, kind="stable")[:top]
    paths = [os.path.join(collection["root"], *PurePath(collection["paths"][i]).parts) for i in nearest]
    rows = [
        (rank, path, f"{distances[i]:.6g}", int(collection["labels"][i]))
        for rank, (i, path) in enumerate(zip(nearest, paths), start=1)
    ]
    _csv_rows(sys.stdout, ("rank", "path", "distance", "cluster"), rows)
    sys.stdout.flush()

    plt = _pyplot_for_files(reporter)
    if plt is None:
        return
    fig = _contact_sheet(
        plt, query, paths, distances[nearest], collection["labels"][nearest], loading, reporter
    )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    _write_file_atomically(sheet, buffer.getvalue())
    reporter.info(f"Contact sheet: {sheet}")


def _contact_sheet(plt, query, paths, distances, labels, loading, reporter):
    """The query image followed by its nearest images, a placeholder for any that is gone."""
    from skdcec.plotting import plot_image_grid

    height, width = loading["size"]
    channels = 1 if loading["color"] == "gray" else 3
    neighbours = np.full((len(paths), height, width, channels), 128, dtype=np.uint8)
    missing = set(paths)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            found = load_images(paths, on_error="skip", **loading)
        except ValueError:
            found = None
    if found is not None:
        position = {path: i for i, path in enumerate(paths)}
        for path, pixels in zip(found.filenames, found.images):
            neighbours[position[path]] = pixels
            missing.discard(path)
    if missing:
        reporter.note(f"{len(missing)} of the similar images can no longer be read, such as {min(missing)!r}")
    stack = np.concatenate([query.images[:1], neighbours])
    titles = [f"query\n{_short_name(query.filenames[0])}"] + [
        f"{rank}. d={distance:.3g}, cluster {label}\n{_short_name(path)}{' (missing)' if path in missing else ''}"
        for rank, (path, distance, label) in enumerate(zip(paths, distances, labels), start=1)
    ]
    title = f"The {len(paths)} images of the collection nearest to {os.path.basename(query.filenames[0])}"
    return plot_image_grid(stack, titles, n_cols=7, title=title)


def _short_name(path, length=18):
    return shorten(os.path.basename(path), length)


# -------------------------------------------------------------------- demo


def _demo_command(args, reporter):
    _check_device(args.device)
    _check_new_output(args.out, args.overwrite, _is_results_folder, "--out")
    settings = _settings(
        args, args.n_clusters, DEMO_SETTINGS["size"], DEMO_SETTINGS["color"], DEMO_SETTINGS["resize"], False
    )
    if not _writes_output():
        # The other processes of a torchrun launch train on their own copy of the digits.
        with tempfile.TemporaryDirectory(prefix="skdcec-demo-") as scratch:
            images_folder = os.path.join(scratch, "images")
            _cluster_into(None, images_folder, settings, reporter, true_labels=_write_digits(images_folder))
        return
    with atomic_folder(args.out, overwrite=args.overwrite, replaceable=_is_results_folder) as work:
        images_folder = os.path.join(work, "images")
        true_labels = _write_digits(images_folder)
        reporter.info(f"Wrote {len(true_labels)} digits of scikit-learn as PNG files into {args.out}/images/")
        _cluster_into(
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
