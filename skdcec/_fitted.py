"""What a fitted clusterer holds, as one record: built by ``fit``, saved, loaded and pickled alike."""

import dataclasses
import math
from numbers import Integral

import numpy as np
import torch

from skdcec._device import resolve_device
from skdcec._files import plain_json
from skdcec._pretraining import autoencoder_from_state, network_from_params

AUTOENCODER_PREFIX = "autoencoder."
ARRAY_NAMES = ("cluster_centers_", "labels_", "input_mean_", "input_scale_")
INPUT_DTYPES = ("uint8", "float32", "float64")


def storable_params(params):
    """The estimator's parameters as plain data that JSON stores.

    Parameters
    ----------
    params : dict
        ``get_params(deep=False)``.

    Returns
    -------
    dict
        ``memory`` as None (a cache location belongs to the machine that
        fitted the model), ``device`` as a string, a ``random_state`` that is
        not an int as None, tuples as lists.

    Raises
    ------
    ValueError
        If a parameter is not a plain number, string, tuple or None.
    """
    params = {**params, "memory": None, "device": str(params["device"])}
    if not (params["random_state"] is None or isinstance(params["random_state"], Integral)):
        params["random_state"] = None
    try:
        return plain_json(params)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"The estimator cannot be saved: {exc}. Parameters must be plain numbers, "
            "strings, tuples or None."
        ) from exc


def trained_device_or_cpu(trained_on):
    """The device a model was trained on when it is available here, else the CPU.

    Parameters
    ----------
    trained_on : str or torch.device
        The recorded ``device_``.

    Returns
    -------
    torch.device
    """
    try:
        return resolve_device(str(trained_on))
    except ValueError:
        return torch.device("cpu")


@dataclasses.dataclass(frozen=True)
class FittedState:
    """Every fitted attribute of a clusterer, set on it in one place.

    The attribute of the estimator is the field's name followed by an
    underscore, but for ``input_ndim`` and ``input_dtype``, which are kept
    private (``input_dtype_`` is a property).
    """

    autoencoder: torch.nn.Module
    cluster_centers: np.ndarray
    labels: np.ndarray
    history: dict
    n_iter: int
    image_shape: tuple
    input_mean: np.ndarray
    input_scale: np.ndarray
    device: torch.device
    n_features_in: int
    input_ndim: int
    input_dtype: np.dtype
    feature_names_in: np.ndarray = None

    def to_plain(self):
        """The state as plain data: a JSON-able dict and a dict of CPU tensors.

        Returns
        -------
        attributes : dict
            Everything but the arrays and the weights.
        tensors : dict of str to torch.Tensor
            The autoencoder's weights (prefixed ``autoencoder.``) and the arrays.
        """
        attributes = {
            "n_iter_": self.n_iter,
            "image_shape_": list(self.image_shape),
            "n_features_in_": self.n_features_in,
            "history_": self.history,
            "device_": str(self.device),
            "input_ndim": self.input_ndim,
            "input_dtype": np.dtype(self.input_dtype).name,
        }
        if self.feature_names_in is not None:
            attributes["feature_names_in_"] = [str(name) for name in self.feature_names_in]
        tensors = {
            AUTOENCODER_PREFIX + name: tensor.detach().cpu().contiguous().clone()
            for name, tensor in self.autoencoder.state_dict().items()
        }
        tensors["cluster_centers_"] = torch.from_numpy(np.array(self.cluster_centers, dtype=np.float64))
        tensors["labels_"] = torch.from_numpy(np.array(self.labels, dtype=np.int64))
        tensors["input_mean_"] = torch.from_numpy(np.array(self.input_mean, dtype=np.float64))
        tensors["input_scale_"] = torch.from_numpy(np.array(self.input_scale, dtype=np.float64))
        return plain_json(attributes), tensors

    @classmethod
    def from_plain(cls, attributes, tensors, *, network, n_clusters, device):
        """Check plain data written by :meth:`to_plain` and rebuild the state from it.

        Parameters
        ----------
        attributes : dict
            The JSON-able part.
        tensors : dict of str to torch.Tensor
            The weights and arrays.
        network : Network
            The sizes of the network, from the estimator's parameters.
        n_clusters : int
            The estimator's number of clusters.
        device : torch.device
            Where the network runs.

        Returns
        -------
        FittedState

        Raises
        ------
        ValueError
            If anything is missing, inconsistent or does not fit the network.
        """
        missing = [name for name in ARRAY_NAMES if name not in tensors]
        if missing:
            raise ValueError(f"the tensor file lacks the fitted arrays {missing}; the model is corrupt.")
        try:
            image_shape = tuple(int(side) for side in attributes["image_shape_"])
            input_ndim = int(attributes["input_ndim"])
            input_dtype = attributes["input_dtype"]
            n_iter = int(attributes["n_iter_"])
            n_features = int(attributes["n_features_in_"])
            history = attributes["history_"]
            names = attributes.get("feature_names_in_")
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"the fitted attributes are incomplete or invalid ({exc!r}).") from exc
        centers = tensors["cluster_centers_"].numpy().astype(np.float64)
        labels = tensors["labels_"].numpy().astype(np.intp)
        mean = tensors["input_mean_"].numpy().astype(np.float64)
        scale = tensors["input_scale_"].numpy().astype(np.float64)
        problems = [
            len(image_shape) != 3 or min(image_shape) < 1,
            n_features != math.prod(image_shape),
            input_ndim not in (2, 3, 4),
            input_dtype not in INPUT_DTYPES,
            centers.shape != (n_clusters, network.embedding_dim),
            labels.ndim != 1 or (labels.size and (labels.min() < 0 or labels.max() >= n_clusters)),
            mean.shape != (image_shape[-1],) or scale.shape != (image_shape[-1],),
            not isinstance(history, dict),
            names is not None and (not isinstance(names, list) or len(names) != n_features),
        ]
        if any(problems):
            raise ValueError("the fitted attributes are inconsistent with each other; the model is corrupt.")
        state = {
            name[len(AUTOENCODER_PREFIX) :]: tensor
            for name, tensor in tensors.items()
            if name.startswith(AUTOENCODER_PREFIX)
        }
        try:
            autoencoder = autoencoder_from_state(
                state, dataclasses.replace(network, image_shape=image_shape), device
            )
        except (RuntimeError, TypeError, ValueError, StopIteration) as exc:
            raise ValueError(f"the weights do not fit the network its parameters describe: {exc}") from exc
        return cls(
            autoencoder=autoencoder.eval(),
            cluster_centers=centers,
            labels=labels,
            history=history,
            n_iter=n_iter,
            image_shape=image_shape,
            input_mean=mean,
            input_scale=scale,
            device=device,
            n_features_in=n_features,
            input_ndim=input_ndim,
            input_dtype=np.dtype(input_dtype),
            feature_names_in=None if names is None else np.asarray(names, dtype=object),
        )


# The estimator's attribute for every field: the name and an underscore, but
# for the two kept private (``input_dtype_`` is a property).
ATTRIBUTES = {
    field.name: f"_{field.name}" if field.name in ("input_ndim", "input_dtype") else f"{field.name}_"
    for field in dataclasses.fields(FittedState)
}

# Where pickling keeps the fitted state, as the plain data a model folder holds.
PICKLED_STATE = "_fitted_state"


class FittedStateMixin:
    """The fitted state of a clusterer: set in one place, exported as plain data, pickled as such.

    ``fit``, loading a model folder and unpickling all go through
    ``_set_fitted``; saving and pickling through ``_fitted_state().to_plain()``.
    """

    @property
    def input_dtype_(self):
        """The dtype of the images given to ``fit``.

        ``uint8`` images are scaled by 1/255; any other dtype is standardised
        with ``input_mean_`` and ``input_scale_``, whose scale image files do not
        tell. Raises AttributeError before ``fit``.

        Returns
        -------
        dtype : numpy.dtype
            The dtype of the training images.
        """
        return np.dtype(self._input_dtype)

    def _set_fitted(self, state):
        """Set every fitted attribute from ``state``: the one place ``fit``, ``load`` and unpickling use."""
        for field, attribute in ATTRIBUTES.items():
            value = getattr(state, field)
            if value is not None:
                setattr(self, attribute, value)
            elif hasattr(self, attribute):
                # Only feature_names_in_ is optional: drop the previous fit's.
                delattr(self, attribute)

    def _fitted_state(self):
        """The fitted attributes as one :class:`FittedState`."""
        return FittedState(
            **{field: getattr(self, attribute, None) for field, attribute in ATTRIBUTES.items()}
        )

    def _restore_fitted(self, attributes, tensors, device):
        """Set the fitted state from the plain data of a model folder or a pickle."""
        self._set_fitted(
            FittedState.from_plain(
                attributes,
                tensors,
                network=network_from_params(self.get_params(deep=False), 2, (1, 1, 1)),
                n_clusters=self.n_clusters,
                device=device,
            )
        )

    # ------------------------------------------------------------ inference

    def __getstate__(self):
        # A copy: object.__getstate__ may hand back the instance's own __dict__.
        state = dict(super().__getstate__())
        if "autoencoder_" in state:
            # The plain data of a model folder: a model fitted on a GPU
            # unpickles anywhere, through the one setter of fitted state.
            for attribute in ATTRIBUTES.values():
                state.pop(attribute, None)
            state[PICKLED_STATE] = self._fitted_state().to_plain()
        return state

    def __setstate__(self, state):
        state = dict(state)
        fitted = state.pop(PICKLED_STATE, None)
        super().__setstate__(state)
        if fitted is not None:
            attributes, tensors = fitted
            self._restore_fitted(attributes, tensors, trained_device_or_cpu(attributes["device_"]))
