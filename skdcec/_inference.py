"""Inference at one batch shape per model: embeddings of rows and images decoded from embeddings."""

import numpy as np
import torch

from skdcec._data import ImageBatches
from skdcec._device import autocast_dtype, cpu_threads
from skdcec._training import embed

# Inference batches hold about this many padded pixels, so that the largest
# activation (the first convolution's output, 32 channels at a quarter of the
# pixels) stays near 64 MB whatever the image size.
INFERENCE_PIXELS_PER_BATCH = 2**21
MAX_INFERENCE_BATCH_SIZE = 256


def inference_batch_size(image_shape):
    """The one batch shape of every inference pass of a network for images of ``image_shape``.

    A function of the image shape only, so that a row's embedding never
    depends on how many rows are predicted with it (see ``embed``): about
    ``INFERENCE_PIXELS_PER_BATCH`` pixels, at most ``MAX_INFERENCE_BATCH_SIZE``
    images.

    Parameters
    ----------
    image_shape : tuple of int
        ``(height, width, channels)``.

    Returns
    -------
    int
    """
    height, width, _ = image_shape
    return int(min(MAX_INFERENCE_BATCH_SIZE, max(1, INFERENCE_PIXELS_PER_BATCH // (height * width))))


def embeddings_in_batches(autoencoder, X, image_shape, mean, scale, precision):
    """Embeddings of the rows ``X``, one inference batch at a time.

    Memory stays that of one batch however many rows ``X`` (a memory map,
    say) has, as long as the caller writes each batch's result into an
    output allocated up front: small per-batch results kept alive between
    the batches' large temporaries fragment the heap, which then grows with
    the number of batches.

    Parameters
    ----------
    autoencoder : torch.nn.Module
        The trained network.
    X : ndarray of shape (n_samples, n_features)
        Validated rows.
    image_shape : tuple of int
        ``(height, width, channels)``.
    mean, scale : ndarray of shape (channels,)
        The input's standardisation.
    precision : str
        The estimator's ``precision``.

    Yields
    ------
    start : int
        The position of the batch's first row.
    z : torch.Tensor
        Its float32 embeddings, on the network's device.
    """
    device = next(autoencoder.parameters()).device
    batch_size = inference_batch_size(image_shape)
    dtype = autocast_dtype(precision, device)
    for start in range(0, X.shape[0], batch_size):
        data = ImageBatches(X[start : start + batch_size], image_shape, mean, scale, device)
        with cpu_threads():
            z = embed(autoencoder, data, batch_size=batch_size, precision=dtype)
        yield start, z


def decode_in_batches(autoencoder, Z, image_shape):
    """Decode the embeddings ``Z`` one inference batch at a time, into an output allocated up front.

    Parameters
    ----------
    autoencoder : torch.nn.Module
        The trained network.
    Z : ndarray of shape (n_points, embedding_dim)
        Points of the embedding.
    image_shape : tuple of int
        ``(height, width, channels)``.

    Returns
    -------
    ndarray of shape (n_points, height, width, channels)
        float64 images in the network's standardised scale.
    """
    device = next(autoencoder.parameters()).device
    batch_size = inference_batch_size(image_shape)
    images = np.empty((len(Z), *image_shape))
    with cpu_threads(), torch.inference_mode():
        for start in range(0, len(Z), batch_size):
            part = torch.as_tensor(Z[start : start + batch_size], dtype=torch.float32, device=device)
            decoded = autoencoder.decode(part).permute(0, 2, 3, 1)
            images[start : start + len(part)] = decoded.double().cpu().numpy()
    return images
