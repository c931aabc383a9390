"""Loading a saved model: the estimator rebuilt from the folder that ``save`` wrote."""

import os

from skdcec._device import resolve_device
from skdcec._estimator import DeepConvEmbeddingClustering
from skdcec._fitted import trained_device_or_cpu
from skdcec._persistence import read_model


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
    manifest, tensors = read_model(path)
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
    if device is None:
        device = trained_device_or_cpu(manifest["attributes"].get("device_"))
    else:
        device = resolve_device(device)
    try:
        estimator._restore_fitted(manifest["attributes"], tensors, device)
    except ValueError as exc:
        raise ValueError(f"The model in {path!r} cannot be loaded: {exc}") from exc
    return estimator
