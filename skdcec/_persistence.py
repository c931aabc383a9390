"""The model folder format, whose reading runs no code: a JSON manifest and a file of plain tensors.

The format knows no estimator class: it stores the parameters, the fitted
attributes that are plain data and a dictionary of tensors, which the
estimator turns into and back from its fitted state.
"""

import os

import torch

from skdcec._files import (
    atomic_folder,
    plain_json,
    read_json,
    read_tensor_file,
    write_json,
    write_tensor_file,
)

FORMAT_NAME = "skdcec-model"
# Bump when a change makes older versions of skdcec unable to read new files.
FORMAT_VERSION = 1
MANIFEST_FILE = "model.json"
TENSORS_FILE = "state.pt"


def write_model(path, *, params, attributes, tensors, overwrite=False):
    """Write a model folder: ``model.json`` and ``state.pt``.

    ``model.json`` holds the format and skdcec versions, ``params``,
    ``attributes`` and a SHA-256 checksum of ``state.pt``, a dictionary of
    plain tensors written with :func:`torch.save` that :func:`read_model`
    reads with ``torch.load(weights_only=True)``. Reading the folder back
    never runs code stored in it.

    The folder is written under a temporary name next to ``path`` and
    renamed into place when complete, so an error or an interruption leaves
    nothing behind.

    Parameters
    ----------
    path : str or os.PathLike
        Folder to create. Its parent folder must exist.
    params : dict
        The estimator's parameters, as plain data.
    attributes : dict
        Its fitted attributes that are plain data.
    tensors : dict of str to torch.Tensor
        Its weights and arrays, on the CPU.
    overwrite : bool, default=False
        Whether to replace an existing ``path``. Only an empty folder or a
        model folder is replaced, and only once the new folder is complete.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False, or if it is not a
        model folder.
    """
    from skdcec._version import __version__

    manifest = plain_json(
        {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "skdcec_version": __version__,
            "torch_version": torch.__version__,
            "params": params,
            "attributes": attributes,
        }
    )
    with atomic_folder(path, overwrite=overwrite, replaceable=is_model_folder) as folder:
        checksum = write_tensor_file(os.path.join(folder, TENSORS_FILE), tensors)
        manifest["files"] = {TENSORS_FILE: {"sha256": checksum}}
        write_json(os.path.join(folder, MANIFEST_FILE), manifest)


def is_model_folder(path):
    """Whether ``path`` is a folder that ``write_model(overwrite=True)`` may replace.

    Parameters
    ----------
    path : str or os.PathLike
        The folder.

    Returns
    -------
    bool
    """
    return os.path.isdir(path) and (not os.listdir(path) or os.path.isfile(os.path.join(path, MANIFEST_FILE)))


def read_model(path):
    """Read and check a model folder written by :func:`write_model`.

    Parameters
    ----------
    path : str or os.PathLike
        The folder.

    Returns
    -------
    manifest : dict
        With the keys ``params``, ``attributes`` and ``skdcec_version``.
    tensors : dict of str to torch.Tensor
        The tensors, on the CPU.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If it is not a model folder, is in a newer format, or was modified.
    """
    path = os.fspath(path)
    manifest = _read_manifest(path)
    entry = manifest["files"].get(TENSORS_FILE)
    checksum = entry.get("sha256") if isinstance(entry, dict) else None
    if not checksum or not isinstance(checksum, str):
        raise ValueError(
            f"{MANIFEST_FILE} in {path!r} records no checksum for {TENSORS_FILE}; the model is corrupt."
        )
    return manifest, read_tensor_file(os.path.join(path, TENSORS_FILE), checksum)


def _read_manifest(path):
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
        manifest = read_json(manifest_path)
    except ValueError as exc:
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
