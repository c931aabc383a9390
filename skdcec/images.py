"""Load a collection of image files into one uint8 array."""

import contextlib
import glob
import math
import os
import secrets
import warnings
from functools import partial
from numbers import Integral

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from numpy.lib import format as npy_format
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError
from sklearn.utils import Bunch

__all__ = ["load_images"]

_IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
_GLOB_CHARACTERS = frozenset("*?[")
_COLORS = ("rgb", "gray")
_RESIZE_POLICIES = ("stretch", "crop", "pad")
_ON_ERROR = ("raise", "skip")

# Lanczos is the sharpest of Pillow's filters and is antialiased when shrinking.
_RESAMPLE = Image.Resampling.LANCZOS
# Black bars, as in a letterbox, unlike the white that transparent pixels become.
_PAD_COLOR = 0
# Transparent areas of drawings, logos and scans are meant to be seen on paper.
_TRANSPARENT_BACKGROUND = "white"
# As in Image.thumbnail (reducing_gap=2), JPEGs are decoded at no less than twice
# the output size, so that the final Lanczos step smooths out the coarse DCT scaling.
_DRAFT_OVERSAMPLING = 2
# EXIF orientations 5 to 8 turn the stored image by a quarter turn.
_QUARTER_TURN_ORIENTATIONS = frozenset({5, 6, 7, 8})
# Decoded images wait in memory until their chunk is written; this bounds that memory.
_CHUNK_BYTES = 64 * 2**20
# ... and at most this many files, so that progress is reported often.
_CHUNK_FILES = 256


def load_images(
    source,
    *,
    size=(128, 128),
    color="rgb",
    resize="stretch",
    recursive=True,
    on_error="raise",
    n_jobs=None,
    out=None,
    progress=None,
):
    """Load image files into one uint8 array of equal-sized images.

    Every file is decoded with Pillow, turned upright according to its EXIF
    orientation, converted to RGB or grayscale and resized to ``size``.

    Parameters
    ----------
    source : str, path-like or iterable of str or path-like
        Where the images are:

        - a folder: the image files in it (and in its subfolders when
          ``recursive=True``), in sorted order of their paths;
        - a glob pattern such as ``"photos/*.jpg"`` or ``"photos/**/*.png"``:
          the matching image files, in sorted order;
        - a single image file;
        - an iterable of paths: these files, in the given order, whatever
          their extension.

        Folders and patterns keep only files ending in .bmp, .gif, .jpeg,
        .jpg, .png, .tif, .tiff or .webp (in any case) and ignore hidden files
        and folders, whose names start with ``"."``. The format of a file is
        read from its content, not from its extension.

    size : int or tuple of (int, int), default=(128, 128)
        Size of every output image as ``(height, width)`` in pixels, in the
        order of NumPy shapes (Pillow orders sizes as width, height). An int
        gives square images.

    color : {"rgb", "gray"}, default="rgb"
        Output channels: ``"rgb"`` gives 3 channels, ``"gray"`` gives 1
        channel of ITU-R 601-2 luma.

    resize : {"stretch", "crop", "pad"}, default="stretch"
        How an image whose aspect ratio differs from ``size`` is fitted:

        - ``"stretch"`` scales width and height independently to ``size``,
          distorting the aspect ratio;
        - ``"crop"`` scales the image until it covers ``size`` and keeps the
          centre, cutting off the overhanging sides;
        - ``"pad"`` scales the image until it fits inside ``size`` and fills
          the rest with black bars (letterbox).

        ``"pad"`` leaks the aspect ratio into the pixels: portraits get
        bars left and right, landscapes above and below. A clusterer can group
        images by their bars alone, which inflates any score against labels
        that correlate with shape, such as genres of paintings.

    recursive : bool, default=True
        Whether a folder source includes its subfolders and whether ``"**"``
        in a pattern matches any number of folders. Symbolic links to folders
        are followed, but each folder is visited once, so link loops end.

    on_error : {"raise", "skip"}, default="raise"
        What to do with a file that cannot be read as an image (corrupt,
        truncated, empty, not an image, unreadable, or larger than Pillow's
        decompression-bomb limit): ``"raise"`` raises a ValueError naming the
        first such file and the cause; ``"skip"`` leaves such files out, lists
        them in ``skipped`` and warns once with their count.

    n_jobs : int, default=None
        Number of threads decoding images in parallel; Pillow releases the
        GIL while it decodes and resizes. ``None`` means 1 unless in a
        :func:`joblib.parallel_config` context, -1 means all processors.

    out : str or path-like, default=None
        If given, the images are written to this ``.npy`` file as they are
        decoded, so that memory holds only a chunk of them at a time, and
        ``images`` is a read-only memory map of the file. The file appears
        only when complete: it is written under a temporary name in the same
        folder and renamed at the end, replacing any existing file; after an
        error or interruption no file, temporary or final, is left behind.

    progress : callable, default=None
        Called as ``progress(n_done, n_total)`` once before the first file
        and after every chunk of files (a few hundred at most), with the
        number of files handled so far, read or skipped, and the number
        found. Drive a progress bar with it.

    Returns
    -------
    collection : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        images : ndarray of shape (n_images, height, width, n_channels)
            The images as uint8, one per loaded file; a read-only
            :class:`numpy.memmap` when ``out`` is given.
        filenames : list of str
            Path of the file behind each row of ``images``.
        skipped : list of (str, str) tuples
            Path and reason for each file left out with ``on_error="skip"``.

    Raises
    ------
    TypeError
        If ``source``, ``size``, ``recursive``, ``out`` or ``progress`` has
        the wrong type.
    ValueError
        If a parameter has an invalid value, if ``source`` holds no image
        file, if a file cannot be read and ``on_error="raise"``, or if no file
        at all can be read.

    See Also
    --------
    sklearn.datasets.load_sample_images : Load two sample photographs.

    Notes
    -----
    Pixels are converted as follows. Transparent pixels (modes RGBA, LA, PA
    and palette or single-colour transparency) are composited on white.
    CMYK uses Pillow's conversion, ignoring any ICC profile. 16-bit images
    keep their top 8 bits (``value >> 8``), so their full range maps to 0-255.
    32-bit integer images (mode I) carry no bit depth: they are read as 8-bit
    when all values lie in [0, 255] and as 16-bit otherwise, clipped to
    [0, 65535]; the 16-bit reading would turn the former all black.
    Floating-point images (mode F) are read as [0, 1] when all values lie in
    that range and as [0, 255] otherwise, clipped. Animated files and
    multi-page TIFFs give their first frame.

    JPEG files are decoded at the smallest of 1/2, 1/4 or 1/8 scale that is
    still at least twice ``size`` (Pillow's draft mode, as in
    :meth:`PIL.Image.Image.thumbnail`), which makes large photos several times
    faster to load; pixels differ from a full decoding by about 1 in 255.

    Images larger than ``PIL.Image.MAX_IMAGE_PIXELS`` are refused from their
    header, before any decoding, whereas Pillow alone would only warn below
    twice that limit. Raise the limit if you trust such files.

    Examples
    --------
    >>> import os
    >>> import tempfile
    >>> from PIL import Image
    >>> from sklearn.datasets import load_sample_images
    >>> from skdcec.images import load_images
    >>> folder = tempfile.TemporaryDirectory()
    >>> for name, pixels in zip(["china.jpg", "flower.jpg"],
    ...                         load_sample_images().images):
    ...     Image.fromarray(pixels).save(os.path.join(folder.name, name))
    >>> collection = load_images(folder.name, size=(96, 128))
    >>> collection.images.shape, collection.images.dtype
    ((2, 96, 128, 3), dtype('uint8'))
    >>> [os.path.basename(path) for path in collection.filenames]
    ['china.jpg', 'flower.jpg']
    >>> gray = load_images(os.path.join(folder.name, "*.jpg"), size=64,
    ...                    color="gray", resize="crop")
    >>> gray.images.shape
    (2, 64, 64, 1)
    >>> stored = load_images(folder.name, out=os.path.join(folder.name, "all.npy"))
    >>> stored.images.shape, stored.images.flags.writeable
    ((2, 128, 128, 3), False)
    >>> del stored
    >>> folder.cleanup()
    """
    height, width = _check_size(size)
    _check_choice("color", color, _COLORS)
    _check_choice("resize", resize, _RESIZE_POLICIES)
    _check_choice("on_error", on_error, _ON_ERROR)
    if not isinstance(recursive, bool):
        raise TypeError(f"recursive must be True or False, got {recursive!r}.")
    if n_jobs is not None and (not isinstance(n_jobs, Integral) or isinstance(n_jobs, bool) or n_jobs == 0):
        raise ValueError(
            f"n_jobs must be None, a positive int or a negative int such as -1 "
            f"(all processors), got {n_jobs!r}."
        )
    out = _check_out(out)
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be None or a callable progress(n_done, n_total), got {progress!r}.")

    paths = _find_image_files(source, recursive)
    shape = (len(paths), height, width, 1 if color == "gray" else 3)
    read = partial(_read_file, size=(width, height), color=color, resize=resize)
    if out is None:
        images = np.empty(shape, dtype=np.uint8)
        filenames, skipped = _read_into(images, paths, read, on_error, n_jobs, progress)
        if skipped:
            images = images[: len(filenames)].copy()
    else:
        filenames, skipped = _read_into_npy(out, shape, paths, read, on_error, n_jobs, progress)
        images = np.load(out, mmap_mode="r")

    if skipped:
        path, reason = skipped[0]
        warnings.warn(
            f"Skipped {len(skipped)} of {len(paths)} image files that could not be "
            f"read, such as {path!r}: {reason}. The 'skipped' attribute of the "
            f"result lists them all with their reasons.",
            UserWarning,
            stacklevel=2,
        )
    return Bunch(images=images, filenames=filenames, skipped=skipped)


def _check_size(size):
    """Return ``size`` as a (height, width) pair of positive ints."""
    if isinstance(size, Integral) and not isinstance(size, bool):
        size = (size, size)
    if not (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(n, Integral) and not isinstance(n, bool) for n in size)
    ):
        raise TypeError(f"size must be an int or a (height, width) pair of ints, got {size!r}.")
    if min(size) < 1:
        raise ValueError(f"size must be positive in both dimensions, got {size!r}.")
    return int(size[0]), int(size[1])


def _check_choice(name, value, options):
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}.")


def _check_out(out):
    """Return ``out`` as a str path to a file that can be created."""
    if out is None:
        return None
    if not isinstance(out, (str, os.PathLike)) or not isinstance(os.fspath(out), str):
        raise TypeError(f"out must be None or a path such as 'images.npy', got {out!r}.")
    out = os.fspath(out)
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise ValueError(f"out={out!r} is in a folder that does not exist; create {folder!r} first.")
    if os.path.isdir(out):
        raise ValueError(
            f"out={out!r} is a folder; give a file path such as {os.path.join(out, 'images.npy')!r}."
        )
    if not os.access(folder, os.W_OK):
        raise ValueError(f"out={out!r} is in folder {folder!r}, which is not writable; choose another.")
    return out


def _find_image_files(source, recursive):
    """Return the paths that ``source`` designates, in their loading order."""
    if isinstance(source, (str, os.PathLike)):
        source = os.fspath(source)
        if not isinstance(source, str):
            raise TypeError(f"source must be a str path, got bytes {source!r}.")
        if os.path.isdir(source):
            paths = _walk_folder(source, recursive)
            where = f"folder {source!r}" + (" or its subfolders" if recursive else "")
        elif os.path.isfile(source):
            return [source]
        elif _GLOB_CHARACTERS.intersection(source):
            paths = sorted(
                path
                for path in glob.glob(source, recursive=recursive)
                if _is_image_name(os.path.basename(path)) and not os.path.isdir(path)
            )
            where = f"pattern {source!r}"
        else:
            raise ValueError(
                f"source {source!r} does not exist; give a folder, an image file, "
                f"a glob pattern or a list of paths."
            )
        if not paths:
            raise ValueError(
                f"No image files found in {where}: looked for names ending in "
                f"{', '.join(_IMAGE_EXTENSIONS)} (in any case), ignoring hidden "
                f"files. Pass a list of paths to load files with other names."
            )
        return paths

    if isinstance(source, bytes) or not hasattr(source, "__iter__"):
        raise TypeError(
            f"source must be a folder, a glob pattern or a list of paths, got {type(source).__name__}."
        )
    paths = []
    for path in source:
        if not isinstance(path, (str, os.PathLike)) or not isinstance(os.fspath(path), str):
            raise TypeError(f"Every path in source must be a str or path-like, got {path!r}.")
        paths.append(os.fspath(path))
    if not paths:
        raise ValueError("source is an empty list; give at least one image path.")
    return paths


def _is_image_name(name):
    return not name.startswith(".") and name.lower().endswith(_IMAGE_EXTENSIONS)


def _walk_folder(folder, recursive):
    """Return the sorted image paths in ``folder``, visiting each folder once.

    Symbolic links to folders are followed, but a folder already visited is
    not entered again, so link loops end. Real subfolders are walked before
    linked ones, so a folder that is also reachable through a link is listed
    under its real path; a folder reachable through several links only is
    listed under the first link in name order.
    """
    found = []
    visited = set()
    pending = [folder]
    pending_links = []
    while pending or pending_links:
        directory = pending.pop() if pending else pending_links.pop()
        try:
            status = os.stat(directory)
            identity = (status.st_dev, status.st_ino)
            if identity in visited:
                continue
            visited.add(identity)
            with os.scandir(directory) as scan:
                # Reversed, so that the stacks pop subfolders in name order.
                entries = sorted(scan, key=lambda entry: entry.name, reverse=True)
        except OSError as exc:
            raise ValueError(
                f"Cannot list folder {directory!r}: {exc.strerror or exc}. Fix its "
                f"permissions, or pass the image paths as a list."
            ) from exc
        for entry in entries:
            if entry.name.startswith("."):
                continue
            # Broken or looping links named like images are kept as files, so
            # that they are reported rather than silently ignored.
            if _is_folder(entry):
                if recursive:
                    (pending_links if entry.is_symlink() else pending).append(entry.path)
            elif _is_image_name(entry.name):
                found.append(entry.path)
    return sorted(found)


def _is_folder(entry):
    """Whether a scandir entry is a folder or a link to one (not a broken link)."""
    try:
        return entry.is_dir()
    except OSError:  # a link loop; a missing target already gives False
        return False


def _read_into_npy(out, shape, paths, read, on_error, n_jobs, progress):
    """Read images into a new ``.npy`` file ``out``, which appears only if complete."""
    folder, name = os.path.split(os.path.abspath(out))
    # Hidden, so that a scan of the folder never takes it for data; random, so
    # that concurrent calls writing the same `out` do not collide.
    unfinished = os.path.join(folder, f".{name}.{secrets.token_hex(8)}.partial")
    try:
        rows = npy_format.open_memmap(unfinished, mode="w+", dtype=np.uint8, shape=shape, version=(1, 0))
        filenames, skipped = _read_into(rows, paths, read, on_error, n_jobs, progress)
        rows.flush()
        del rows
        if skipped:
            _truncate_npy(unfinished, (len(filenames), *shape[1:]))
        os.replace(unfinished, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(unfinished)
        raise
    return filenames, skipped


def _truncate_npy(path, shape):
    """Shrink the version 1.0 uint8 ``.npy`` file at ``path`` to ``shape``."""
    with open(path, "r+b") as file:
        npy_format.read_magic(file)
        npy_format.read_array_header_1_0(file)
        data_offset = file.tell()
        file.seek(0)
        # NumPy pads the header so that the first dimension can change in place:
        # the new header ends exactly where the old one did.
        npy_format.write_array_header_1_0(file, {"descr": "|u1", "fortran_order": False, "shape": shape})
        file.truncate(data_offset + math.prod(shape))


def _read_into(rows, paths, read, on_error, n_jobs, progress):
    """Decode ``paths`` in order, writing readable images to consecutive rows.

    Returns the paths of the images written and the (path, reason) of each
    file that could not be read.
    """
    filenames = []
    skipped = []
    chunk_size = max(effective_n_jobs(n_jobs), min(_CHUNK_FILES, _CHUNK_BYTES // rows[0].nbytes))
    if progress is not None:
        progress(0, len(paths))
    # Threads, not processes: the warning filter below applies to this process
    # only, and Pillow releases the GIL while decoding.
    with Parallel(n_jobs=n_jobs, require="sharedmem") as parallel, warnings.catch_warnings():
        # Pillow only warns for images between its limit and twice the limit;
        # as an error, the warning stops them in Image.open, before decoding.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        for start in range(0, len(paths), chunk_size):
            chunk = paths[start : start + chunk_size]
            results = parallel(delayed(read)(path) for path in chunk)
            for path, (pixels, error) in zip(chunk, results):
                if error is None:
                    rows[len(filenames)] = pixels
                    filenames.append(path)
                elif on_error == "raise":
                    raise ValueError(
                        f"Cannot read image file {path!r}: {_describe(error)}. "
                        f"Fix or remove the file, or pass on_error='skip' to "
                        f"leave out files that cannot be read."
                    ) from error
                else:
                    skipped.append((path, _describe(error)))
            if progress is not None:
                progress(start + len(chunk), len(paths))
    if not filenames:
        path, reason = skipped[0]
        raise ValueError(f"None of the {len(paths)} image files could be read, such as {path!r}: {reason}.")
    return filenames, skipped


def _describe(error):
    """Say in words why a file could not be read."""
    if isinstance(error, UnidentifiedImageError):
        return "Pillow cannot identify it as an image (corrupt, or not an image)"
    if isinstance(error, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return f"{error} It was not decoded; raise PIL.Image.MAX_IMAGE_PIXELS if you trust it"
    if isinstance(error, OSError):
        return error.strerror or str(error)
    return f"{type(error).__name__}: {error}"


def _read_file(path, *, size, color, resize):
    """Read one image file as a uint8 array of shape (height, width, channels).

    Returns ``(pixels, None)``, or ``(None, error)`` for a file that cannot be
    read, so that the caller deals with failures in file order.
    """
    try:
        with open(path, "rb") as file:
            if os.fstat(file.fileno()).st_size == 0:
                return None, OSError("the file is empty (0 bytes)")
            with Image.open(file) as image:
                return _read_image(image, size, color, resize), None
    # Pillow's format parsers raise many exception types on malformed input
    # (OSError, SyntaxError, struct.error, IndexError, ...); whichever it is,
    # the file cannot be read.
    except Exception as error:  # noqa: BLE001
        return None, error


def _read_image(image, size, color, resize):
    """Turn an opened image upright, convert it and resize it to ``size`` (width, height)."""
    width, height = size
    mode = "L" if color == "gray" else "RGB"
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    stored_size = (height, width) if orientation in _QUARTER_TURN_ORIENTATIONS else (width, height)
    # Decodes a JPEG at reduced scale; other formats ignore it.
    image.draft(mode, tuple(_DRAFT_OVERSAMPLING * side for side in stored_size))
    ImageOps.exif_transpose(image, in_place=True)
    image = _convert(image, mode)
    if resize == "stretch":
        image = image.resize(size, _RESAMPLE)
    elif resize == "crop":
        image = ImageOps.fit(image, size, method=_RESAMPLE)
    else:
        image = ImageOps.pad(image, size, method=_RESAMPLE, color=_PAD_COLOR)
    return np.asarray(image).reshape(height, width, -1)


def _convert(image, mode):
    """Convert ``image`` to the 8-bit ``mode``, "RGB" or "L"."""
    if image.mode.startswith("I;16"):
        # The top 8 bits; Pillow's own conversion clips everything above 255.
        image = Image.fromarray((np.asarray(image) >> 8).astype(np.uint8))
    elif image.mode == "I":
        values = np.clip(np.asarray(image), 0, 65535)
        if values.max() > 255:
            values >>= 8
        image = Image.fromarray(values.astype(np.uint8))
    elif image.mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        if values.max() <= 1:
            values *= 255
        image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))
    elif image.has_transparency_data:
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, _TRANSPARENT_BACKGROUND)
        image = Image.alpha_composite(background, image)
    if image.mode != mode:
        image = image.convert(mode)
    return image
