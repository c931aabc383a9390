"""The ``skdcec`` command: cluster a folder of images, predict, find similar images, run a demo.

Every command writes its files under a temporary name and renames them into
place when complete, refuses to replace existing output without
``--overwrite``, and reports a user's mistake as one line on standard error
with exit status 2. Progress goes to standard error: bars on a terminal (with
tqdm installed), plain lines otherwise, nothing with ``--quiet``.

This module holds the arguments; the commands live in ``_cli_cluster`` (cluster,
demo) and ``_cli_model`` (predict, similar), over the public library.
"""

import argparse
import contextlib
import signal
import sys
import threading

from skdcec import DeepConvEmbeddingClustering
from skdcec._cli_cluster import DEMO_SETTINGS, PIXEL_SIDE, cluster_command, demo_command
from skdcec._cli_model import predict_command, similar_command
from skdcec._cli_output import Reporter, UserError, one_line, writes_output
from skdcec._version import __version__
from skdcec.features import NAMED_BACKBONES

__all__ = ["main"]

PROG = "skdcec"
# The estimator's defaults, which the command's defaults are unless it says otherwise.
ESTIMATOR_DEFAULTS = DeepConvEmbeddingClustering().get_params()


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


def _or_auto(minimum, what):
    """An integer of at least ``minimum``, or ``auto``."""

    def parse(text):
        if text == "auto":
            return text
        try:
            return _integer(minimum)(text)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"invalid value {text!r}: give a number of {what} ({minimum} or more) or auto"
            ) from None

    parse.__name__ = f"integer >= {minimum} or auto"
    return parse


def _add_training_options(parser, defaults):
    group = parser.add_argument_group("training")
    group.add_argument(
        "--pretrain-epochs",
        type=_or_auto(0, "epochs"),
        default=defaults["pretrain_epochs"],
        metavar="N",
        help="epochs of autoencoder pretraining; auto is at most 200, or 500 with --augment, and stops "
        "once the reconstruction stops improving (default: %(default)s)",
    )
    group.add_argument(
        "--max-iter",
        type=_or_auto(0, "mini-batches"),
        default=defaults["max_iter"],
        metavar="N",
        help="most mini-batches of joint clustering training; auto is 400 passes over the images, at most "
        "DCEC's 20000 (default: %(default)s)",
    )
    group.add_argument(
        "--update-interval",
        type=_or_auto(1, "mini-batches"),
        default=defaults["update_interval"],
        metavar="N",
        help="mini-batches between updates of the target distribution; auto is 5 passes over the images, "
        "at most DCEC's 140 (default: %(default)s)",
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
            "Cluster the images in FOLDER (and its subfolders) and write RESULTS/: index.html (a page "
            "per k showing every cluster with all its images), clusters.csv, summary.json, model/, a "
            "montage per cluster, embedding.png and training.png (and prototypes.png for pixels). By "
            "default the images are described by a pretrained network's features when "
            '"skdcec[pretrained]" is installed (see --features). With several values of --n-clusters, '
            "the features are computed and the autoencoder pretrained once, every k is fitted and scored "
            "(k_selection.csv, k_selection.png, clusters_k<K>.csv), and the full results are written "
            "for the k with the best silhouette in the embedding."
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
        "--features",
        choices=["auto", "pixels", *NAMED_BACKBONES],
        default="auto",
        help="what is clustered: the features of a pretrained network (efficientnet-lite0 and up, with "
        '"skdcec[pretrained]" installed), which group paintings and photos by what they show, or the '
        "pixels, which suit digits and other small, aligned images; auto is efficientnet-lite0 when "
        "installed, else pixels (default: %(default)s)",
    )
    loading.add_argument(
        "--size",
        type=_size,
        default=None,
        metavar="PIXELS",
        help=f"size every image is resized to: SIDE or HEIGHTxWIDTH (default: {PIXEL_SIDE} for pixels, "
        "the network's own input side for features: 224 for efficientnet-lite0)",
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
    cluster.set_defaults(handler=cluster_command)

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
    predict.set_defaults(handler=predict_command)

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
    similar.set_defaults(handler=similar_command)

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
    demo.set_defaults(handler=demo_command)
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
    ...       "--features", "pixels", "--pretrain-epochs", "2", "--max-iter", "10",
    ...       "--out", results, "--quiet"])
    0
    >>> sorted(name for name in os.listdir(results) if not name.endswith(".png"))
    ['clusters.csv', 'index.html', 'k2.html', 'model', 'prototypes', 'summary.json', 'thumbnails']
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
    reporter = Reporter(quiet=args.quiet or not writes_output())
    try:
        with _interruptible(reporter):
            args.handler(args, reporter)
    except (UserError, OSError) as exc:
        sys.stderr.write(f"{PROG} {args.command}: error: {one_line(exc)}\n")
        return 2
    except FloatingPointError as exc:
        sys.stderr.write(f"{PROG} {args.command}: error: {one_line(exc)}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write(f"\n{PROG} {args.command}: interrupted; no output was written.\n")
        return 130
    return 0


@contextlib.contextmanager
def _interruptible(reporter):
    """Inside the block, Ctrl-C and SIGTERM interrupt the run for good.

    Both raise KeyboardInterrupt, so that temporary output is cleaned up,
    through :meth:`Reporter.interrupt`, which raises it again at every later
    report should a finaliser drop it; Python's report of the dropped one is
    left out, as it is no error. A SIGINT that this process ignores (a job
    that a shell started in the background) stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    previous_hook = sys.unraisablehook

    def interrupt(signum, frame):
        reporter.interrupt()

    def report_unraisable(unraisable):
        if not (reporter.interrupted and issubclass(unraisable.exc_type, KeyboardInterrupt)):
            previous_hook(unraisable)

    replaced = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signum == signal.SIGINT and signal.getsignal(signum) is not signal.default_int_handler:
            continue
        replaced[signum] = signal.signal(signum, interrupt)
    sys.unraisablehook = report_unraisable
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        for signum, handler in replaced.items():
            signal.signal(signum, handler)
