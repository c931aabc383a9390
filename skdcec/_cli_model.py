"""The commands that use a saved model: ``predict`` and ``similar``."""

import io
import os
import sys
import warnings
from pathlib import PurePath

import numpy as np
from sklearn.pipeline import Pipeline

from skdcec import load
from skdcec._cli_files import (
    MODEL_FOLDER,
    check_new_output,
    csv_rows,
    load_collection,
    read_collection,
    relative,
)
from skdcec._cli_output import UserError, check_device, pyplot_for_files
from skdcec._files import write_file_atomically
from skdcec._persistence import MANIFEST_FILE
from skdcec._text import shorten
from skdcec.features import PretrainedFeatures
from skdcec.images import load_images


def load_model(path, device):
    """The model in ``path`` (a model folder or a results folder), its collection and its folder.

    A model whose collection names a feature front end comes back as a
    pipeline of that front end and the clusterer; with the front end's
    weights missing, a clear error says what to install.
    """
    check_device(device)
    inside = os.path.join(path, MODEL_FOLDER)
    if os.path.isfile(os.path.join(inside, MANIFEST_FILE)) and not os.path.exists(
        os.path.join(path, MANIFEST_FILE)
    ):
        # A results folder of 'cluster': its model.
        path = inside
    try:
        clusterer = load(path, device=device)
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from exc
    collection = read_collection(path, clusterer.embedding_dim)
    if collection is None or collection["features"] is None:
        return clusterer, collection, path
    height, width = collection["size"]
    channels = 1 if collection["color"] == "gray" else 3
    try:
        features = PretrainedFeatures(**{**collection["features"], "device": device})
        features.fit(np.zeros((1, height, width, channels), dtype=np.uint8))
    except (TypeError, ValueError) as exc:
        raise UserError(f"the feature front end recorded in {path!r} cannot be rebuilt: {exc}") from exc
    except ImportError as exc:
        raise UserError(str(exc)) from exc
    return Pipeline([("features", features), ("dcec", clusterer)]), collection, path


def model_loading(estimator, collection, resize):
    """How to read images for ``estimator``: the size and channels it was fitted on."""
    if isinstance(estimator, Pipeline):
        # A feature front end: the images as the collection was read.
        resize = collection["resize"] if resize is None else resize
        return {"size": collection["size"], "color": collection["color"], "resize": resize}
    height, width, channels = estimator.image_shape_
    if estimator.input_dtype_ != np.uint8:
        raise UserError(
            f"the model was fitted on {np.dtype(estimator.input_dtype_).name} arrays, whose scale image "
            "files do not tell; the command line needs a model fitted on uint8 images, such as one "
            "written by 'skdcec cluster'."
        )
    if channels not in (1, 3):
        raise UserError(
            f"the model was fitted on images with {channels} channels; image files are read as "
            "grayscale (1 channel) or RGB (3 channels)."
        )
    if resize is None:
        resize = collection["resize"] if collection is not None else "stretch"
    return {"size": (height, width), "color": "gray" if channels == 1 else "rgb", "resize": resize}


def predict_command(args, reporter):
    if args.out is not None:
        check_new_output(args.out, args.overwrite, os.path.isfile, "--out")
    if not os.path.exists(args.folder):
        raise UserError(f"{args.folder!r} does not exist; give a folder of images or an image file.")
    estimator, collection, _ = load_model(args.model, args.device)
    loading = model_loading(estimator, collection, args.resize)
    images = load_collection(args.folder, reporter, skip_unreadable=args.skip_unreadable, **loading)
    proba = estimator.predict_proba(images.images)
    root = args.folder if os.path.isdir(args.folder) else os.path.dirname(os.path.abspath(args.folder))
    paths = [relative(path, root) for path in images.filenames]
    rows = [
        (path, int(label), f"{value:.6f}") for path, label, value in zip(paths, proba.argmax(1), proba.max(1))
    ]
    header = ("path", "cluster", "confidence")
    if args.out is None:
        csv_rows(sys.stdout, header, rows)
        sys.stdout.flush()
        return
    text = io.StringIO()
    csv_rows(text, header, rows)
    write_file_atomically(args.out, text.getvalue().encode("utf-8"))
    sizes = np.bincount(proba.argmax(1), minlength=proba.shape[1])
    reporter.info(f"Wrote {args.out}: {len(rows)} images, cluster sizes {sizes.tolist()}")


def similar_command(args, reporter):
    if not os.path.isfile(args.image):
        raise UserError(f"{args.image!r} is not an image file.")
    sheet = args.sheet
    if sheet is None:
        sheet = f"similar_{os.path.splitext(os.path.basename(args.image))[0]}.png"
    check_new_output(sheet, args.overwrite, os.path.isfile, "--sheet")
    estimator, collection, model = load_model(args.model, args.device)
    if collection is None:
        raise UserError(
            f"{model!r} holds no collection of training images; 'similar' needs a model folder "
            "written by 'skdcec cluster'."
        )
    loading = model_loading(estimator, collection, None)
    query = load_collection(args.image, reporter, **loading)
    point = estimator.transform(query.images)[0]
    distances = np.linalg.norm(collection["embedding"] - point, axis=1)
    top = min(args.top, len(distances))
    nearest = np.argsort(distances, kind="stable")[:top]
    paths = [os.path.join(collection["root"], *PurePath(collection["paths"][i]).parts) for i in nearest]
    rows = [
        (rank, path, f"{distances[i]:.6g}", int(collection["labels"][i]))
        for rank, (i, path) in enumerate(zip(nearest, paths), start=1)
    ]
    csv_rows(sys.stdout, ("rank", "path", "distance", "cluster"), rows)
    sys.stdout.flush()

    plt = pyplot_for_files(reporter)
    if plt is None:
        return
    fig = _contact_sheet(
        plt, query, paths, distances[nearest], collection["labels"][nearest], loading, reporter
    )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_file_atomically(sheet, buffer.getvalue())
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
