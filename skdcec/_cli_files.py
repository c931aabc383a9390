"""The command line's files: results folders, CSV files, the collection kept beside a model, image folders."""

import csv
import os
import shutil
import time
from pathlib import PurePath

import numpy as np
import torch

from skdcec._cli_output import UserError, notes_from_warnings
from skdcec._files import read_json, read_tensor_file, write_json, write_tensor_file
from skdcec._version import __version__
from skdcec.images import load_images

MODEL_FOLDER = "model"
SUMMARY_FILE = "summary.json"
COLLECTION_FILE = "collection.json"
COLLECTION_TENSORS_FILE = "collection.pt"
COLLECTION_FORMAT = "skdcec-collection"
# Version 2 adds the feature front end; pixel collections are still written as version 1.
COLLECTION_FORMAT_VERSION = 2


def is_inside(path, folder):
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


def is_results_folder(path):
    return os.path.isdir(path) and (not os.listdir(path) or os.path.isfile(os.path.join(path, SUMMARY_FILE)))


def check_new_output(path, overwrite, replaceable, option):
    if os.path.lexists(path):
        if not overwrite:
            raise UserError(
                f"{path!r} already exists; pass --overwrite to replace it, or choose another {option}."
            )
        if not replaceable(path):
            raise UserError(
                f"{path!r} exists and was not written by skdcec; refusing to replace it. "
                f"Choose another {option}."
            )
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UserError(f"cannot create {path!r}: the folder {parent!r} does not exist.")


def relative(path, root):
    """``path`` relative to ``root``, with forward slashes."""
    return PurePath(os.path.relpath(os.path.abspath(path), os.path.abspath(root))).as_posix()


def write_csv(path, header, rows):
    with open(path, "x", newline="", encoding="utf-8") as file:
        csv_rows(file, header, rows)


def csv_rows(file, header, rows):
    writer = csv.writer(file, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)


def write_clusters_csv(path, paths, labels, confidence):
    rows = [(name, int(label), f"{value:.6f}") for name, label, value in zip(paths, labels, confidence)]
    write_csv(path, ("path", "cluster", "confidence"), rows)


def write_k_selection_csv(path, fits):
    header = list(fits[0])
    rows = [["" if record[key] is None else record[key] for key in header] for record in fits]
    write_csv(path, header, rows)


def write_collection(model_folder, work, folder, relative_paths, embedding, labels, loading, features):
    """Keep the training images' paths and embeddings beside the model, for ``predict`` and ``similar``.

    ``loading`` is how the images were read (size, color, resize);
    ``features`` the parameters of the feature front end the model's
    clusterer takes its input from, or None for pixels.
    """
    root = os.path.abspath(folder)
    if is_inside(root, work):
        # The demo's images live in the results folder, which is renamed at the end.
        root = os.path.relpath(root, model_folder)
    checksum = write_tensor_file(
        os.path.join(model_folder, COLLECTION_TENSORS_FILE),
        {
            "embedding": torch.from_numpy(np.ascontiguousarray(embedding, dtype=np.float32)),
            "labels": torch.from_numpy(np.asarray(labels, dtype=np.int64)),
        },
    )
    manifest = {
        "format": COLLECTION_FORMAT,
        "format_version": 1 if features is None else COLLECTION_FORMAT_VERSION,
        "root": root,
        "paths": relative_paths,
        "loading": {"size": list(loading["size"]), "color": loading["color"], "resize": loading["resize"]},
    }
    if features is not None:
        manifest["features"] = features
    manifest["files"] = {COLLECTION_TENSORS_FILE: {"sha256": checksum}}
    write_json(os.path.join(model_folder, COLLECTION_FILE), manifest)


def copy_to_folders(work, folder, filenames, labels, reporter):
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
        target = os.path.join(work, f"cluster_{label}", relative(path, folder))
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


def read_collection(model_folder, embedding_dim):
    """The training collection stored by ``cluster`` beside the model, or None."""
    manifest_path = os.path.join(model_folder, COLLECTION_FILE)
    if not os.path.isfile(manifest_path):
        return None
    try:
        manifest = read_json(manifest_path)
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
        features = manifest.get("features")
        if not (isinstance(paths, list) and all(isinstance(path, str) for path in paths)):
            raise ValueError("its paths are not a list of strings")
        if features is not None and not isinstance(features, dict):
            raise ValueError("its features are not a mapping of parameters")
    except (
        OSError,
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
    ) as exc:
        raise UserError(f"{manifest_path!r} is not a valid collection file: {exc}") from exc
    try:
        tensors = read_tensor_file(os.path.join(model_folder, COLLECTION_TENSORS_FILE), checksum)
        embedding = tensors["embedding"].numpy().astype(np.float64)
        labels = tensors["labels"].numpy().astype(np.intp)
    except (KeyError, ValueError) as exc:
        raise UserError(f"the collection in {model_folder!r} cannot be used: {exc}") from exc
    if embedding.shape != (len(paths), embedding_dim) or labels.shape != (len(paths),):
        raise UserError(f"the collection in {model_folder!r} does not match its model; it is corrupt.")
    return {
        "root": root,
        "paths": paths,
        "size": size,
        "color": color,
        "resize": resize,
        "embedding": embedding,
        "labels": labels,
        "features": features,
    }


def load_collection(source, reporter, *, size, color, resize, skip_unreadable=False, shown_as=None):
    reporter.info(f"Loading images from {source if shown_as is None else shown_as} ...")
    started = time.perf_counter()
    display = None

    def show_progress(n_done, n_total):
        nonlocal display
        if display is None:
            display = reporter.progress("loading", n_total, "image")
        display.update(n_done)

    with notes_from_warnings(reporter):
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
            raise UserError(str(exc)) from exc
        finally:
            if display is not None:
                display.close()
    n_images = len(collection.filenames)
    reporter.info(
        f"Loaded {n_images} image{'' if n_images == 1 else 's'} as {size[0]}x{size[1]} {color} "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return collection
