"""The model folder format, whose reading runs no code: writing it, reading and checking it back."""

import contextlib
import hashlib
import json
import os
import secrets
import shutil
from numbers import Integral

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

FORMAT_NAME = "skdcec-model"
# Bump when a change makes older versions of skdcec unable to read new files.
FORMAT_VERSION = 1
MANIFEST_FILE = "model.json"
TENSORS_FILE = "state.pt"
AUTOENCODER_PREFIX = "autoencoder."
ARRAY_NAMES = ("cluster_centers_", "labels_", "input_mean_", "input_scale_")
INPUT_DTYPES = ("uint8", "float32", "float64")


def save(estimator, path, *, overwrite=False):
    """Save a fitted estimator to the folder ``path``.

    The folder holds ``model.json`` (the format and skdcec versions, the
    parameters, the fitted attributes that are plain data and a SHA-256
    checksum of the tensor file) and ``state.pt``: a dictionary of plain
    tensors (weights, cluster centres, labels, input scaling) written with
    :func:`torch.save`, which :func:`load` reads with
    ``torch.load(weights_only=True)``. Reading the folder back never runs
    code stored in it.

    The folder is written under a temporary name next to ``path`` and
    renamed into place when complete, so an error or an interruption leaves
    nothing behind.

    Parameters
    ----------
    estimator : DeepConvEmbeddingClustering
        A fitted estimator.
    path : str or os.PathLike
        Folder to create. Its parent folder must exist.
    overwrite : bool, default=False
        Whether to replace an existing ``path``. Only an empty folder or a
        folder written by this function is replaced, and only once the new
        folder is complete.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False, or if it is not a
        model folder.
    ValueError
        If a parameter cannot be stored as JSON.

    Notes
    -----
    The ``memory`` parameter is stored as ``None`` (a cache location belongs
    to the machine that fitted the model), ``device`` as a string and a
    ``random_state`` that is a ``RandomState`` instance as ``None``.

    Examples
    --------
    >>> import os
    >>> import tempfile
    >>> from sklearn.datasets import load_digits
    >>> from skdcec import DeepConvEmbeddingClustering
    >>> from skdcec._persistence import save
    >>> X = load_digits().data[:100]
    >>> est = DeepConvEmbeddingClustering(3, pretrain_epochs=2, max_iter=10,
    ...                                   random_state=0).fit(X)
    >>> folder = tempfile.TemporaryDirectory()
    >>> save(est, os.path.join(folder.name, "model"))
    >>> sorted(os.listdir(os.path.join(folder.name, "model")))
    ['model.json', 'state.pt']
    >>> folder.cleanup()
    """
    check_is_fitted(estimator)
    manifest = _manifest(estimator)
    tensors = _tensors(estimator)
    with atomic_folder(path, overwrite=overwrite, replaceable=is_model_folder) as folder:
        tensors_path = os.path.join(folder, TENSORS_FILE)
        torch.save(tensors, tensors_path)
        manifest["files"] = {TENSORS_FILE: {"sha256": file_sha256(tensors_path)}}
        write_json(os.path.join(folder, MANIFEST_FILE), manifest)


# ------------------------------------------------------------------ writing


def _manifest(estimator):
    from skdcec._version import __version__

    params = estimator.get_params(deep=False)
    params["memory"] = None
    params["device"] = str(params["device"])
    if not (params["random_state"] is None or isinstance(params["random_state"], Integral)):
        params["random_state"] = None
    attributes = {
        "n_iter_": estimator.n_iter_,
        "image_shape_": estimator.image_shape_,
        "n_features_in_": estimator.n_features_in_,
        "history_": estimator.history_,
        "device_": str(estimator.device_),
        "input_ndim": estimator._input_ndim,
        "input_dtype": estimator.input_dtype_.name,
    }
    if hasattr(estimator, "feature_names_in_"):
        attributes["feature_names_in_"] = [str(name) for name in estimator.feature_names_in_]
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "skdcec_version": __version__,
        "torch_version": torch.__version__,
        "estimator": "DeepConvEmbeddingClustering",
        "params": params,
        "attributes": attributes,
    }
    try:
        # Round-trip now, so that an unstorable value fails before any file is written.
        return json.loads(json.dumps(manifest, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"The estimator cannot be saved: {exc}. Parameters must be plain numbers, "
            "strings, tuples or None."
        ) from exc


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.device):
        return str(value)
    raise TypeError(f"{value!r} of type {type(value).__name__} is not JSON serialisable")


def _tensors(estimator):
    tensors = {
        AUTOENCODER_PREFIX + name: tensor.detach().cpu().contiguous().clone()
        for name, tensor in estimator.autoencoder_.state_dict().items()
    }
    tensors["cluster_centers_"] = torch.from_numpy(np.array(estimator.cluster_centers_, dtype=np.float64))
    tensors["labels_"] = torch.from_numpy(np.array(estimator.labels_, dtype=np.int64))
    tensors["input_mean_"] = torch.from_numpy(np.array(estimator.input_mean_, dtype=np.float64))
    tensors["input_scale_"] = torch.from_numpy(np.array(estimator.input_scale_, dtype=np.float64))
    return tensors


def write_json(path, data):
    """Write ``data`` as indented UTF-8 JSON to the new file ``path``."""
    with open(path, "x", encoding="utf-8") as file:
        json.dump(data, file, indent=2, default=_json_default)
        file.write("\n")


def file_sha256(path):
    """Hex SHA-256 digest of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_model_folder(path):
    """Whether ``path`` is a folder that ``save(overwrite=True)`` may replace."""
    return os.path.isdir(path) and (not os.listdir(path) or os.path.isfile(os.path.join(path, MANIFEST_FILE)))


@contextlib.contextmanager
def atomic_folder(path, *, overwrite, replaceable):
    """Build a folder under a temporary name; rename it to ``path`` when the block succeeds.

    The temporary folder is hidden and sits next to ``path``, so the final
    rename stays on one file system. If the block raises (or is interrupted),
    the temporary folder is removed and ``path`` is left as it was. With
    ``overwrite``, an existing ``path`` for which ``replaceable(path)`` is true
    is moved aside, replaced and then deleted; a symbolic link at ``path`` is
    replaced itself, and what it points to is left alone.

    Parameters
    ----------
    path : str or os.PathLike
        The folder to create.
    overwrite : bool
        Whether an existing ``path`` may be replaced.
    replaceable : callable
        Says whether an existing ``path`` is ours to replace.

    Yields
    ------
    str
        The temporary folder to write into.
    """
    path = os.path.abspath(os.fspath(path))
    parent, name = os.path.split(path)
    _check_target(path, overwrite, replaceable)
    if not os.path.isdir(parent):
        raise FileNotFoundError(
            f"Cannot create {path!r}: the folder {parent!r} does not exist; create it first."
        )
    unfinished = os.path.join(parent, f".{name}.{secrets.token_hex(8)}.partial")
    os.mkdir(unfinished)
    try:
        yield unfinished
        # Checked again: the block may have run for hours.
        _check_target(path, overwrite, replaceable)
        _move_into_place(unfinished, path)
    except BaseException:
        shutil.rmtree(unfinished, ignore_errors=True)
        raise


def _check_target(path, overwrite, replaceable):
    if not os.path.lexists(path):
        return
    if not overwrite:
        raise FileExistsError(f"{path!r} already exists; choose another path or pass overwrite=True.")
    if not replaceable(path):
        raise FileExistsError(
            f"{path!r} exists and was not written by skdcec; refusing to replace it. "
            "Choose another path or remove it yourself."
        )


def _move_into_place(unfinished, path):
    if not os.path.lexists(path):
        os.replace(unfinished, path)
        return
    parent, name = os.path.split(path)
    aside = os.path.join(parent, f".{name}.{secrets.token_hex(8)}.replaced")
    os.replace(path, aside)
    try:
        os.replace(unfinished, path)
    except BaseException:
        os.replace(aside, path)
        raise
    # A symbolic link that stood at ``path`` is replaced, never its target.
    if os.path.islink(aside):
        os.remove(aside)
    else:
        shutil.rmtree(aside, ignore_errors=True)


# ------------------------------------------------------------------ reading


def read_manifest(path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"No model at {path!r}: the path does not exist.")
    if not os.path.isdir(path):
        raise ValueError(
            f"{path!r} is a file, not a model folder; pass the folder written by save(), "
            f"which holds {MANIFEST_FILE} and {TENSORS_FILE}."
        )
    manifest_path = os.path.join(path, MANIFEST_FILE)
    if not os.path.isfile(manifest_path):
        raise ValueError(f"{path!r} is not a skdcec model folder: it holds no {MANIFEST_FILE}.")
    try:
        with open(manifest_path, encoding="utf-8") as file:
            manifest = json.load(file)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(
            f"{manifest_path!r} is not valid JSON ({exc}); the model is corrupt or foreign."
        ) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise ValueError(
            f"{manifest_path!r} does not describe a skdcec model (format {found!r}, "
            f"expected {FORMAT_NAME!r})."
        )
    from skdcec._version import __version__

    version = manifest.get("format_version")
    saved_by = manifest.get("skdcec_version", "an unknown version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(
            f"{manifest_path!r} has an invalid format_version {version!r}; the model is corrupt."
        )
    if version > FORMAT_VERSION:
        raise ValueError(
            f"The model in {path!r} was saved by skdcec {saved_by} in format version {version}, "
            f"but skdcec {__version__} reads format versions up to {FORMAT_VERSION}. "
            "Upgrade skdcec to load it."
        )
    incomplete = [key for key in ("params", "attributes", "files") if not isinstance(manifest.get(key), dict)]
    if incomplete:
        raise ValueError(f"{manifest_path!r} has no valid {incomplete} entries; the model is corrupt.")
    return manifest


def read_tensor_file(path, expected_sha256):
    """Read a dictionary of plain tensors whose file matches ``expected_sha256``.

    Parameters
    ----------
    path : str
        The file, written with :func:`torch.save`.
    expected_sha256 : str
        Checksum recorded when the file was written.

    Returns
    -------
    dict of str to torch.Tensor
        The tensors, on the CPU.

    Raises
    ------
    ValueError
        If the file is missing, does not match the checksum, or holds
        anything but a dictionary of tensors. Nothing in it is executed.
    """
    if not os.path.isfile(path):
        raise ValueError(f"{path!r} is missing; the model folder is incomplete.")
    if file_sha256(path) != expected_sha256:
        raise ValueError(
            f"{path!r} does not match the checksum recorded when it was saved: it was "
            "modified or corrupted. Refusing to load it."
        )
    try:
        tensors = torch.load(path, map_location="cpu", weights_only=True)
    # torch.load raises UnpicklingError for forbidden content and various
    # errors for malformed archives: either way the file is refused.
    except Exception as exc:
        raise ValueError(
            f"{path!r} does not hold plain tensors and was refused unread ({type(exc).__name__}); "
            "it is corrupt or not a skdcec file."
        ) from exc
    if not (
        isinstance(tensors, dict)
        and all(isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in tensors.items())
    ):
        raise ValueError(f"{path!r} does not hold a dictionary of named tensors; it is not a skdcec file.")
    return tensors


def read_tensors(path, manifest):
    entry = manifest["files"].get(TENSORS_FILE)
    checksum = entry.get("sha256") if isinstance(entry, dict) else None
    if not checksum or not isinstance(checksum, str):
        raise ValueError(
            f"{MANIFEST_FILE} in {path!r} records no checksum for {TENSORS_FILE}; the model is corrupt."
        )
    tensors = read_tensor_file(os.path.join(path, TENSORS_FILE), checksum)
    missing = [name for name in ARRAY_NAMES if name not in tensors]
    if missing:
        raise ValueError(f"{TENSORS_FILE} in {path!r} lacks {missing}; the model is corrupt.")
    return tensors
