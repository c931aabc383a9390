"""Files on disk: atomic folder and file writes, JSON, checksums and plain-tensor files.

Everything skdcec writes goes through here: a folder or file is built under a
hidden temporary name next to its final path and renamed into place when
complete, so an error or an interruption leaves nothing half-written.
"""

import contextlib
import hashlib
import json
import os
import secrets
import shutil

import numpy as np
import torch


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


def write_file_atomically(path, data):
    """Write the bytes ``data`` to a hidden temporary file next to ``path``, then rename it to ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create or replace.
    data : bytes
        Its content.
    """
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


def plain_json(data):
    """``data`` round-tripped through JSON: NumPy scalars and devices become plain values.

    Parameters
    ----------
    data : object
        Numbers, strings, None, lists, tuples, dicts, NumPy scalars and
        :class:`torch.device` objects.

    Returns
    -------
    object
        The same data as JSON reads it back (tuples become lists).

    Raises
    ------
    TypeError
        If ``data`` holds a value JSON cannot store.
    """
    return json.loads(json.dumps(data, default=_json_default))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.device):
        return str(value)
    raise TypeError(f"{value!r} of type {type(value).__name__} is not JSON serialisable")


def write_json(path, data):
    """Write ``data`` as indented UTF-8 JSON to the new file ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create; it must not exist.
    data : object
        What :func:`plain_json` accepts.
    """
    with open(path, "x", encoding="utf-8") as file:
        json.dump(data, file, indent=2, default=_json_default)
        file.write("\n")


def file_sha256(path):
    """Hex SHA-256 digest of the file at ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    str
        The digest, 64 hexadecimal digits.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_tensor_file(path, tensors):
    """Write a dictionary of plain tensors with :func:`torch.save`; return the file's SHA-256.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create.
    tensors : dict of str to torch.Tensor
        The tensors, on the CPU.

    Returns
    -------
    str
        The file's checksum, for :func:`read_tensor_file`.
    """
    torch.save(tensors, path)
    return file_sha256(path)


def read_tensor_file(path, expected_sha256):
    """Read a dictionary of plain tensors whose file matches ``expected_sha256``.

    Parameters
    ----------
    path : str
        The file, written with :func:`write_tensor_file`.
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


def read_json(path):
    """Read the UTF-8 JSON file ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    object
        What it holds.

    Raises
    ------
    ValueError
        If the file is not UTF-8 or not JSON (``UnicodeDecodeError`` and
        ``json.JSONDecodeError`` are both ``ValueError``).
    """
    with open(path, encoding="utf-8") as file:
        return json.load(file)
