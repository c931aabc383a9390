"""Loading a saved model: the estimator rebuilt from the folder that ``save`` wrote."""

import math
import os

import numpy as np
import torch

from skdcec._device import resolve_device
from skdcec._estimator import DeepConvEmbeddingClustering, autoencoder_from_state
from skdcec._persistence import AUTOENCODER_PREFIX, INPUT_DTYPES, read_manifest, read_tensors


def load(path, *, device=None):
    """Load an estimator saved with ``save``, without running any stored code.

    The parameters are read from JSON and the tensors with
    ``torch.load(weights_only=True)``, which only rebuilds plain tensors. A
    folder that is not a skdcec model, that was modified after it was saved,
    or that holds anything but tensors is refused.

    Parameters
    ----------
    path : str or os.PathLike
        Folder written by :meth:`DeepConvEmbeddingClustering.save`.
    device : str or torch.device, default=None
        Device to run inference on. ``None`` means the device the model was
        trained on when it is available here, else the CPU, so that a model
        fitted on a GPU loads on a machine without one.

    Returns
    -------
    estimator : DeepConvEmbeddingClustering
        The fitted estimator, with every fitted attribute restored.
        ``device_`` is the device the model now runs on.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``path`` is not a skdcec model folder, was written in a newer
        format than this version of skdcec reads, was modified or corrupted,
        or holds anything but plain tensors; or if ``device`` is not
        available.

    Examples
    --------
    >>> import os
    >>> import tempfile
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from skdcec import DeepConvEmbeddingClustering, load
    >>> X = load_digits().data[:100]
    >>> est = DeepConvEmbeddingClustering(3, pretrain_epochs=2, max_iter=10,
    ...                                   random_state=0).fit(X)
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "model")
    >>> _ = est.save(path)
    >>> restored = load(path)
    >>> np.array_equal(restored.predict(X), est.predict(X))
    True
    >>> folder.cleanup()
    """
    path = os.fspath(path)
    manifest = read_manifest(path)
    tensors = read_tensors(path, manifest)
    return _rebuild(path, manifest, tensors, device)


def _rebuild(path, manifest, tensors, device):
    # JSON turns tuples (filters, image_shape, augment) into lists.
    params = {
        name: tuple(value) if isinstance(value, list) else value for name, value in manifest["params"].items()
    }
    try:
        estimator = DeepConvEmbeddingClustering(**params)
        estimator._validate_params()
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"The parameters in {path!r} (saved by skdcec {manifest.get('skdcec_version')}) are "
            f"not valid for this version of skdcec: {exc}"
        ) from exc

    attributes = manifest["attributes"]
    try:
        image_shape = tuple(int(side) for side in attributes["image_shape_"])
        input_ndim = int(attributes["input_ndim"])
        input_dtype = attributes["input_dtype"]
        n_iter = int(attributes["n_iter_"])
        n_features = int(attributes["n_features_in_"])
        history = attributes["history_"]
        trained_on = str(attributes["device_"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"The fitted attributes in {path!r} are incomplete or invalid ({exc!r}).") from exc
    centers = tensors["cluster_centers_"].numpy().astype(np.float64)
    labels = tensors["labels_"].numpy().astype(np.intp)
    mean = tensors["input_mean_"].numpy().astype(np.float64)
    scale = tensors["input_scale_"].numpy().astype(np.float64)
    problems = [
        len(image_shape) != 3 or min(image_shape) < 1,
        n_features != math.prod(image_shape),
        input_ndim not in (2, 3, 4),
        input_dtype not in INPUT_DTYPES,
        centers.shape != (estimator.n_clusters, estimator.embedding_dim),
        labels.ndim != 1 or (labels.size and (labels.min() < 0 or labels.max() >= estimator.n_clusters)),
        mean.shape != (image_shape[-1],) or scale.shape != (image_shape[-1],),
        not isinstance(history, dict),
    ]
    if any(problems):
        raise ValueError(
            f"The fitted attributes in {path!r} are inconsistent with each other; the model is corrupt."
        )

    if device is None:
        try:
            device = resolve_device(trained_on)
        except ValueError:
            device = torch.device("cpu")
    else:
        device = resolve_device(device)
    state = {
        name[len(AUTOENCODER_PREFIX) :]: tensor
        for name, tensor in tensors.items()
        if name.startswith(AUTOENCODER_PREFIX)
    }
    try:
        autoencoder = autoencoder_from_state(
            state,
            image_shape,
            list(estimator.filters),
            estimator.embedding_dim,
            estimator.activation,
            device,
            tuple(estimator.hidden_layers),
        )
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(
            f"The weights in {path!r} do not fit the network its parameters describe: {exc}"
        ) from exc

    estimator.autoencoder_ = autoencoder.eval()
    estimator.cluster_centers_ = centers
    estimator.labels_ = labels
    estimator.history_ = history
    estimator.n_iter_ = n_iter
    estimator.image_shape_ = image_shape
    estimator.input_mean_ = mean
    estimator.input_scale_ = scale
    estimator.device_ = device
    estimator.n_features_in_ = n_features
    if "feature_names_in_" in attributes:
        estimator.feature_names_in_ = np.asarray(attributes["feature_names_in_"], dtype=object)
    estimator._input_ndim = input_ndim
    estimator._input_dtype = np.dtype(input_dtype)
    return estimator
