"""Image collections as batches of float tensors, converted one batch at a time."""

import mmap

import numpy as np
import torch

from skdcec._device import memory_format

# Bytes of float64 temporaries per chunk when a whole collection is read
# (statistics, a copy on the GPU), whatever the size of one image.
CHUNK_BYTES = 2**26
# Scattered rows read from a memory map between two releases of its pages.
MAPPED_ROWS_PER_RELEASE = 16


def _shared_file_mapping(X):
    """The shared file mapping behind a memory-mapped array, or ``None``.

    Pages read through a mapping stay in the process's resident memory until
    it is unmapped, so an epoch over a memory-mapped collection would end with
    all of it resident. Worse, a page fault maps the whole page-cache folio
    around the page (up to 2 MB on current Linux file systems), so a batch of
    scattered rows can map tens of times its own size. A shared mapping's
    pages can be dropped from the process after every batch (they stay in the
    page cache, and are read back on the next touch); a copy-on-write one's
    cannot, as that would discard the user's private changes.
    """
    if not hasattr(mmap, "MADV_DONTNEED"):
        return None
    mode = None
    array = X
    while isinstance(array, np.ndarray):
        if isinstance(array, np.memmap) and mode is None:
            mode = array.mode
        array = array.base
    if isinstance(array, mmap.mmap) and mode in ("r", "r+", "w+"):
        return array
    return None


def rows_per_chunk(X):
    """Rows of ``X`` whose float64 conversion takes about ``CHUNK_BYTES`` (at least one row).

    Parameters
    ----------
    X : numpy.ndarray of shape (n_samples, n_features)
        The collection.

    Returns
    -------
    int
    """
    return max(1, CHUNK_BYTES // (8 * max(1, X.shape[1])))


def channel_statistics(X, n_channels):
    """Per-channel mean and standard deviation of a flat image collection.

    The collection is read in chunks, accumulated in float64, so a large
    memory-mapped collection is never converted whole.

    Parameters
    ----------
    X : numpy.ndarray of shape (n_samples, height * width * n_channels)
        Flattened channels-last images.
    n_channels : int
        Number of channels.

    Returns
    -------
    mean : numpy.ndarray of shape (n_channels,)
    std : numpy.ndarray of shape (n_channels,)
        A channel without spread gets a standard deviation of 1.
    """
    total = np.zeros(n_channels)
    total_sq = np.zeros(n_channels)
    count = 0
    rows = rows_per_chunk(X)
    for start in range(0, X.shape[0], rows):
        chunk = np.asarray(X[start : start + rows], dtype=np.float64)
        chunk = chunk.reshape(-1, n_channels)
        # Centre each chunk on the first chunk's mean so that the sum of
        # squares does not lose precision on data with a large offset.
        if count == 0:
            shift = chunk.mean(axis=0)
        chunk = chunk - shift
        total += chunk.sum(axis=0)
        total_sq += np.square(chunk).sum(axis=0)
        count += chunk.shape[0]
    mean = total / count
    variance = np.maximum(total_sq / count - np.square(mean), 0.0)
    std = np.sqrt(variance)
    # A spread below float64 resolution of the values is no spread at all; a
    # small spread of small values (images scaled by 1e-13) is a real one.
    std[(std == 0) | (std <= 1e-12 * np.abs(mean + shift))] = 1.0
    return mean + shift, std


class ImageBatches:
    """A flat NumPy image collection served as NCHW float32 tensors.

    ``uint8`` images are mapped to ``[0, 1]``; any other dtype is standardised
    per channel with ``mean`` and ``std`` (``float64`` in ``float64``, before it
    is narrowed to ``float32``, so that values far from zero keep their
    spread). Conversion happens one batch at a time, so a ``uint8``
    collection (or a memory map) is never copied whole to float. On a CUDA
    device a collection that fits is moved there once, in its compact dtype
    (``uint8``, or standardised ``float32``), and batches are cut from it
    without host copies.

    Parameters
    ----------
    X : numpy.ndarray of shape (n_samples, height * width * channels)
        Flattened channels-last images.
    image_shape : tuple of int
        ``(height, width, channels)``.
    mean, std : numpy.ndarray of shape (channels,) or None
        Standardisation for non-``uint8`` data; ignored for ``uint8``.
    device : torch.device
        Where batches are delivered.
    resident : bool, default=None
        Whether to keep the whole collection on ``device``; ``None`` keeps it
        there on a CUDA device whose free memory holds it four times over.
    """

    def __init__(self, X, image_shape, mean, std, device, *, resident=None):
        self.X = X
        self.image_shape = tuple(image_shape)
        self.device = device
        self.n_samples = X.shape[0]
        self._memory_format = memory_format(device)
        self._host_mean = self._host_scale = None
        if X.dtype == np.uint8:
            self._offset, self._scale = 0.0, 1.0 / 255.0
        elif X.dtype == np.float64:
            # float32 cannot hold the spread of values far from zero (1e9 + a
            # unit spread): standardise on the host, in float64.
            self._offset = self._scale = None
            self._host_mean = np.tile(np.asarray(mean, dtype=np.float64), X.shape[1] // len(mean))
            self._host_scale = 1.0 / np.tile(np.asarray(std, dtype=np.float64), X.shape[1] // len(std))
        else:
            self._offset = torch.as_tensor(mean, dtype=torch.float32, device=device)
            self._scale = torch.as_tensor(1.0 / std, dtype=torch.float32, device=device)
        if resident is None:
            resident = self._fits_on_device()
        self._resident = self._device_copy() if resident else None
        self._mapping = None if self._resident is not None else _shared_file_mapping(X)

    def _fits_on_device(self):
        if self.device.type != "cuda":
            return False
        free_bytes, _ = torch.cuda.mem_get_info(self.device)
        # Leave most of the memory to activations and the optimiser.
        return self.X.size * (1 if self.X.dtype == np.uint8 else 4) <= free_bytes // 4

    def _device_copy(self):
        if self.X.dtype == np.uint8:
            compact = np.array(self.X, copy=True)
        else:
            compact = np.empty(self.X.shape, dtype=np.float32)
            rows = rows_per_chunk(self.X)
            for start in range(0, self.n_samples, rows):
                compact[start : start + rows] = self._narrow(self.X[start : start + rows])
        return torch.from_numpy(compact).to(self.device)

    def __len__(self):
        return self.n_samples

    def _narrow(self, rows):
        """Rows as float32, standardised on the way when they are float64."""
        if self._host_mean is None:
            return rows.astype(np.float32)
        return ((rows - self._host_mean) * self._host_scale).astype(np.float32)

    def _normalise(self, raw):
        height, width, channels = self.image_shape
        images = raw.reshape(-1, height, width, channels).permute(0, 3, 1, 2)
        images = images.to(torch.float32, memory_format=self._memory_format)
        if self._offset is None:
            return images
        if isinstance(self._offset, float):
            return images.mul_(self._scale)
        # Out of place: a float32 batch may be a view of the resident collection.
        return (images - self._offset.view(1, -1, 1, 1)) * self._scale.view(1, -1, 1, 1)

    def take(self, indices):
        """Images at ``indices`` as a float tensor on the device.

        Parameters
        ----------
        indices : torch.Tensor or numpy.ndarray of int
            Sample positions; sorted ones read a memory map sequentially.

        Returns
        -------
        torch.Tensor of shape (len(indices), channels, height, width)
        """
        if self._resident is not None:
            index = torch.as_tensor(indices, device=self.device)
            return self._normalise(self._resident.index_select(0, index))
        indices = np.asarray(indices)
        if self._mapping is None:
            rows = np.take(self.X, indices, axis=0)
        else:
            # Each scattered row can map a 2 MB folio: release every few rows.
            rows = np.empty((len(indices), self.X.shape[1]), dtype=self.X.dtype)
            for start in range(0, len(indices), MAPPED_ROWS_PER_RELEASE):
                part = slice(start, start + MAPPED_ROWS_PER_RELEASE)
                np.take(self.X, indices[part], axis=0, out=rows[part])
                self._release_mapped_pages()
        return self._normalise(self._host_to_device(rows))

    def slice(self, start, stop):
        """Images ``start:stop`` as a float tensor on the device.

        Parameters
        ----------
        start, stop : int
            Range of sample positions.

        Returns
        -------
        torch.Tensor of shape (stop - start, channels, height, width)
        """
        if self._resident is not None:
            return self._normalise(self._resident[start:stop])
        rows = np.array(self.X[start:stop], copy=True)
        self._release_mapped_pages()
        return self._normalise(self._host_to_device(rows))

    def _release_mapped_pages(self):
        """Drop the pages that reads mapped in from a memory map (a few microseconds)."""
        if self._mapping is not None:
            self._mapping.madvise(mmap.MADV_DONTNEED)

    def _host_to_device(self, rows):
        if self._host_mean is not None:
            rows = self._narrow(rows)
        tensor = torch.from_numpy(rows)
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)
