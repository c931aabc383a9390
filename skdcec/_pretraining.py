"""The autoencoder's pretraining as a cacheable function of named settings; networks rebuilt from state."""

import dataclasses
import math
from numbers import Integral

import torch

from skdcec._autoencoder import ConvAutoencoder, DenseAutoencoder
from skdcec._device import autocast_dtype, make_generator, place_module, seeded_global_rng
from skdcec._training import pretrain

# Pretraining epochs of pretrain_epochs="auto": DCEC's (Guo et al., 2017) and,
# with augmentation, DEC-DA's (Guo et al., 2018).
DCEC_PRETRAIN_EPOCHS = 200
DEC_DA_PRETRAIN_EPOCHS = 500
# pretrain_epochs="auto" stops earlier once the mean reconstruction loss of this
# many epochs is less than this fraction below that of the as many epochs before.
PRETRAIN_PLATEAU_WINDOW = 20
PRETRAIN_PLATEAU_IMPROVEMENT = 0.05
# ... though never before half the epochs nor before PRETRAIN_MIN_STEPS
# mini-batches: on a small collection an epoch is one or two mini-batches, a
# window of 20 epochs too short to tell a plateau from noise (200 MNIST digits
# stopped after 100 one-batch epochs with k-means on the embedding at NMI 0.29;
# 200 epochs: 0.52). The dense network also trains at least that many: 200
# epochs of a few hundred feature vectors are a few hundred optimiser steps for
# millions of weights (200 MNIST digits' features, three seeds: DCEC NMI 0.50,
# 0.42, 0.55, below KMeans' 0.53, 0.51, 0.61, after 200 steps; 0.53, 0.59,
# 0.63 after 1,000). 1,000 is what 1,250 images get in 200 epochs.
PRETRAIN_MIN_STEPS = 1000
# The dense autoencoder (feature vectors) pretrains as a denoising one, with
# the input dropout of DEC's stacked autoencoder; the joint phase and
# inference see clean input.
DENSE_INPUT_DROPOUT = 0.2


def _epochs_for_min_steps(batches_per_epoch):
    """Epochs that take ``PRETRAIN_MIN_STEPS`` mini-batches of ``batches_per_epoch`` each."""
    return math.ceil(PRETRAIN_MIN_STEPS / batches_per_epoch)


def pretrain_plateau(pretrain_epochs, epochs, batches_per_epoch):
    """The plateau rule ``pretrain_epochs`` asks for: ``(window, improvement, min_epochs)``.

    Parameters
    ----------
    pretrain_epochs : int or "auto"
        The estimator's parameter: ``"auto"`` stops on a plateau, though
        never before half of the ``epochs`` (early plateaus of the loss
        end) nor before ``PRETRAIN_MIN_STEPS`` mini-batches; an int
        trains exactly that many epochs, ``(None, 0.0, 0)``.
    epochs : int
        The most epochs.
    batches_per_epoch : int
        Mini-batches in an epoch.

    Returns
    -------
    tuple
    """
    if pretrain_epochs != "auto":
        return (None, 0.0, 0)
    min_epochs = max(epochs // 2, _epochs_for_min_steps(batches_per_epoch))
    return (PRETRAIN_PLATEAU_WINDOW, PRETRAIN_PLATEAU_IMPROVEMENT, min(epochs, min_epochs))


def resolve_pretrain_epochs(pretrain_epochs, augmented, kind, batches_per_epoch):
    """Return the most pretraining epochs that ``pretrain_epochs`` asks for.

    Parameters
    ----------
    pretrain_epochs : int or "auto"
        The estimator's parameter.
    augmented : bool
        Whether pretraining sees augmented images.
    kind : {"conv", "dense"}
        The network.
    batches_per_epoch : int
        Mini-batches in an epoch.

    Returns
    -------
    int
        ``pretrain_epochs`` itself, or for ``"auto"`` DEC-DA's 500 epochs
        when ``augmented`` and DCEC's 200 otherwise; the dense network
        trains at least ``PRETRAIN_MIN_STEPS`` mini-batches.
    """
    if pretrain_epochs != "auto":
        return pretrain_epochs
    epochs = DEC_DA_PRETRAIN_EPOCHS if augmented else DCEC_PRETRAIN_EPOCHS
    if kind == "dense":
        epochs = max(epochs, _epochs_for_min_steps(batches_per_epoch))
    return epochs


@dataclasses.dataclass(frozen=True)
class Network:
    """What builds an autoencoder: its kind and sizes.

    Parameters
    ----------
    kind : {"conv", "dense"}
        :class:`ConvAutoencoder` or :class:`DenseAutoencoder`.
    image_shape : tuple of int
        ``(height, width, channels)`` of the input.
    filters : tuple of int
        The convolutional network's channels.
    hidden_layers : tuple of int
        The dense network's hidden widths.
    embedding_dim : int
        Size of the embedding.
    activation : str
        Non-linearity of the hidden layers.
    """

    kind: str
    image_shape: tuple
    filters: tuple
    hidden_layers: tuple
    embedding_dim: int
    activation: str

    def build(self, input_dropout=0.0):
        """A fresh network with weights drawn from torch's global generator.

        Parameters
        ----------
        input_dropout : float, default=0.0
            The dense network's input dropout in training mode (it has no
            weights, so a network rebuilt without it loads the same state).

        Returns
        -------
        torch.nn.Module
        """
        if self.kind == "dense":
            return DenseAutoencoder(
                self.image_shape, self.hidden_layers, self.embedding_dim, self.activation, input_dropout
            )
        return ConvAutoencoder(self.image_shape, list(self.filters), self.embedding_dim, self.activation)


def network_from_params(params, input_ndim, image_shape):
    """The network ``params`` ask for: ``autoencoder`` (``"auto"`` resolved from the input), sizes checked.

    Parameters
    ----------
    params : dict
        The estimator's parameters.
    input_ndim : int
        Dimensions of the training ``X``.
    image_shape : tuple of int
        ``(height, width, channels)`` of the images.

    Returns
    -------
    Network
    """
    kind = params["autoencoder"]
    if kind == "auto":
        kind = "dense" if input_ndim == 2 and params["image_shape"] is None else "conv"
    filters = tuple(params["filters"])
    if not filters or not all(isinstance(f, Integral) and f > 0 for f in filters):
        raise ValueError(
            f"filters={params['filters']!r} must be a non-empty tuple of positive ints, e.g. (32, 64, 128)."
        )
    hidden_layers = tuple(params["hidden_layers"])
    if not all(isinstance(width, Integral) and width > 0 for width in hidden_layers):
        raise ValueError(
            f"hidden_layers={params['hidden_layers']!r} must be a tuple of positive ints, "
            "e.g. (500, 500, 2000), or () for a single linear layer each way."
        )
    return Network(
        kind=kind,
        image_shape=tuple(image_shape),
        filters=filters,
        hidden_layers=hidden_layers,
        embedding_dim=params["embedding_dim"],
        activation=params["activation"],
    )


@dataclasses.dataclass(frozen=True)
class PretrainingSettings:
    """Everything but the data that a pretrained autoencoder depends on: the key of its cache.

    ``skdcec_version`` only keys the cache: joblib notices changes to the
    cached function's own code, not to the model or the training loop it
    calls, so a cache filled by another version of skdcec must miss.
    """

    network: Network
    epochs: int
    plateau: tuple
    batch_size: int
    learning_rate: float
    precision: str
    compile: bool
    augmentations: tuple
    reconstruct_augmented: bool
    seed: int
    device: str
    skdcec_version: str


def pretrained_autoencoder_state(X, mean, std, settings, *, data=None, parallel=None, callback=None):
    """Pretrain a fresh autoencoder; return its CPU state dict and history.

    A module-level function of plain arguments, so that ``joblib.Memory`` can
    cache it: the result depends on the data and ``settings``, not on
    ``n_clusters``. ``X``, ``mean``, ``std`` and ``settings`` key the cache;
    the batches are served by ``data``, the caller's ``ImageBatches`` of the
    same images, which is left out of the key with ``parallel`` and
    ``callback``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The training images, as rows (only keys the cache).
    mean, std : ndarray of shape (channels,)
        Their standardisation (only key the cache).
    settings : PretrainingSettings
        The network and the training settings.
    data : ImageBatches
        The batches of ``X``.
    parallel : DataParallel, default=None
        The torchrun group, if any.
    callback : callable, default=None
        Called with ``("pretrain", record)`` after every epoch.

    Returns
    -------
    state : dict of str to torch.Tensor
        The trained weights, on the CPU.
    history : list of dict
        One record per epoch.
    """
    device = torch.device(settings.device)
    seed = settings.seed
    input_dropout = DENSE_INPUT_DROPOUT if settings.network.kind == "dense" else 0.0
    # The initial weights and the input dropout's masks come from torch's
    # global generator: seed it for the whole pretraining, so that the same
    # seed gives the same network, and leave the caller's state as it was.
    with seeded_global_rng(seed, device):
        autoencoder = place_module(settings.network.build(input_dropout), device)
        history = pretrain(
            torch.compile(autoencoder) if settings.compile else autoencoder,
            data,
            epochs=settings.epochs,
            batch_size=settings.batch_size,
            learning_rate=settings.learning_rate,
            generator=make_generator(seed, torch.device("cpu")),
            precision=autocast_dtype(settings.precision, device),
            augmentations=frozenset(settings.augmentations),
            augment_generator=make_generator(seed if parallel is None else parallel.rank_seed(seed), device),
            reconstruct_augmented=settings.reconstruct_augmented,
            parallel=parallel,
            callback=callback,
            plateau_window=settings.plateau[0],
            plateau_improvement=settings.plateau[1],
            plateau_min_epochs=settings.plateau[2],
        )
    state = {name: tensor.detach().cpu() for name, tensor in autoencoder.state_dict().items()}
    return state, history


def autoencoder_from_state(state, network, device):
    """Rebuild a trained autoencoder from its state dict, on ``device``.

    The state says which kind of network it holds (the first weight of a
    dense autoencoder is a matrix, that of a convolutional one a stack of
    kernels), so a model comes back with the network it was fitted with,
    whatever ``network.kind`` says; ``network`` gives its sizes.

    Parameters
    ----------
    state : dict of str to torch.Tensor
        The weights.
    network : Network
        The sizes of the network.
    device : torch.device
        Where the network runs.

    Returns
    -------
    torch.nn.Module
    """
    first = next(tensor for name, tensor in state.items() if name.endswith(".weight"))
    network = dataclasses.replace(network, kind="dense" if first.ndim == 2 else "conv")
    # Construction draws throwaway initial weights from torch's global
    # generator: fork it so that the caller's random state stays as it was.
    with seeded_global_rng(0, torch.device("cpu")):
        autoencoder = network.build()
    autoencoder.load_state_dict(state)
    return place_module(autoencoder, device)
