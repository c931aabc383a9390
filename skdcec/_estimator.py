"""The scikit-learn estimator: validates, plans shapes and delegates to the torch core."""

import functools
import math
import sys
import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin, _fit_context
from sklearn.cluster import KMeans, SpectralClustering
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, check_memory, validate_data

from skdcec._augmentation import AUGMENTATIONS, resolve_augmentations
from skdcec._autoencoder import ACTIVATIONS, ConvAutoencoder, DenseAutoencoder
from skdcec._clustering import ClusteringLayer, log_soft_assignment_in_chunks
from skdcec._dask import pretraining_lock
from skdcec._data import ImageBatches, channel_statistics
from skdcec._distributed import DataParallel, launched_by_torchrun
from skdcec._device import (
    autocast_dtype,
    cpu_threads,
    make_generator,
    place_module,
    resolve_device,
    seeded_global_rng,
)
from skdcec._training import embed, pretrain, train_clustering
from skdcec.metrics import clustering_scores

# Inference batches hold about this many padded pixels, so that the largest
# activation (the first convolution's output, 32 channels at a quarter of the
# pixels) stays near 64 MB whatever the image size.
INFERENCE_PIXELS_PER_BATCH = 2**21
MAX_INFERENCE_BATCH_SIZE = 256
# Neighbours per sample in the graph of the spectral initialisation
# (scikit-learn's default for SpectralClustering).
SPECTRAL_NEIGHBORS = 10
# Bytes of input checked at a time for NaN, infinity and range.
VALUE_CHECK_BYTES = 2**24
# The network computes in float32: larger inputs would overflow on the way in.
FLOAT32_MAX = float(np.finfo(np.float32).max)
# Pretraining epochs of pretrain_epochs="auto": DCEC's (Guo et al., 2017) and,
# with augmentation, DEC-DA's (Guo et al., 2018).
DCEC_PRETRAIN_EPOCHS = 200
DEC_DA_PRETRAIN_EPOCHS = 500
# The dense autoencoder (feature vectors) pretrains as a denoising one, with
# the input dropout of DEC's stacked autoencoder; fine-tuning sees clean input.
DENSE_INPUT_DROPOUT = 0.2


def resolve_pretrain_epochs(pretrain_epochs, augmented):
    """Return the number of pretraining epochs that ``pretrain_epochs`` asks for.

    Parameters
    ----------
    pretrain_epochs : int or "auto"
        The estimator's parameter.
    augmented : bool
        Whether pretraining sees augmented images.

    Returns
    -------
    int
        ``pretrain_epochs`` itself, or for ``"auto"`` DEC-DA's 500 epochs
        when ``augmented`` and DCEC's 200 otherwise.
    """
    if pretrain_epochs != "auto":
        return pretrain_epochs
    return DEC_DA_PRETRAIN_EPOCHS if augmented else DCEC_PRETRAIN_EPOCHS


def _check_values(X):
    """Raise a ValueError naming the first row of ``X`` with NaN, infinity or an out-of-range value.

    ``X`` is read in chunks, so a memory-mapped collection is never copied whole.
    """
    if X.dtype == np.uint8:
        return
    rows_per_chunk = max(1, VALUE_CHECK_BYTES // max(1, X.itemsize * X.shape[1]))
    for start in range(0, X.shape[0], rows_per_chunk):
        chunk = np.asarray(X[start : start + rows_per_chunk])
        # Comparisons with NaN are false: one test covers NaN, infinity and range.
        if -FLOAT32_MAX <= chunk.min() and chunk.max() <= FLOAT32_MAX:
            continue
        for offset, row in enumerate(chunk):
            if np.isnan(row).any():
                problem = "NaN"
            elif np.isinf(row).any():
                problem = "infinity"
            elif np.abs(row).max() > FLOAT32_MAX:
                raise ValueError(
                    f"Input X holds a value of magnitude {np.abs(row).max():.3g} in row "
                    f"{start + offset}, beyond the float32 range (+-{FLOAT32_MAX:.3g}) the "
                    "network computes in. Divide X by a constant: inputs are standardised, "
                    "so the clustering does not depend on their scale."
                )
            else:
                continue
            raise ValueError(
                f"Input X contains {problem} in row {start + offset}. Images must be finite "
                "numbers: drop those rows, or replace the values (np.nan_to_num, or "
                "sklearn.impute.SimpleImputer in a pipeline)."
            )


def build_autoencoder(
    network, image_shape, filters, hidden_layers, embedding_dim, activation, input_dropout=0.0
):
    """A fresh ``"conv"`` (:class:`ConvAutoencoder`) or ``"dense"`` (:class:`DenseAutoencoder`) network.

    ``input_dropout`` makes the dense network a denoising one; the convolutional one ignores it.
    """
    if network == "dense":
        return DenseAutoencoder(image_shape, hidden_layers, embedding_dim, activation, input_dropout)
    return ConvAutoencoder(image_shape, filters, embedding_dim, activation)


def _pretrained_autoencoder_state(
    X,
    image_shape,
    mean,
    std,
    network,
    filters,
    hidden_layers,
    embedding_dim,
    activation,
    epochs,
    batch_size,
    learning_rate,
    precision,
    compile,
    augmentations,
    reconstruct_augmented,
    seed,
    device,
    skdcec_version,
    data=None,
    parallel=None,
    callback=None,
):
    """Pretrain a fresh autoencoder; return its CPU state dict and history.

    A module-level function of plain arguments, so that ``joblib.Memory`` can
    cache it: the result depends on the data and the pretraining parameters,
    not on ``n_clusters``. ``X``, ``mean`` and ``std`` key the cache; the
    batches are served by ``data``, the caller's ``ImageBatches`` of the same
    images, which is left out of the key with ``parallel`` and ``callback``.
    ``skdcec_version`` only keys the cache: joblib notices changes to this
    function's own code, not to the model or the training loop it calls, so
    a cache filled by another version of skdcec must miss.
    """
    device = torch.device(device)
    # Dropout has no weights: autoencoder_from_state rebuilds the same network
    # without it for the joint phase and inference. Its masks come from torch's
    # global generator, seeded for the pretraining and restored after it.
    input_dropout = DENSE_INPUT_DROPOUT if network == "dense" else 0.0
    with seeded_global_rng(seed, device):
        autoencoder = place_module(
            build_autoencoder(
                network, image_shape, filters, hidden_layers, embedding_dim, activation, input_dropout
            ),
            device,
        )
        history = pretrain(
            torch.compile(autoencoder) if compile else autoencoder,
            data,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            generator=make_generator(seed, torch.device("cpu")),
            precision=autocast_dtype(precision, device),
            augmentations=frozenset(augmentations),
            augment_generator=make_generator(seed if parallel is None else parallel.rank_seed(seed), device),
            reconstruct_augmented=reconstruct_augmented,
            parallel=parallel,
            callback=callback,
        )
    state = {name: tensor.detach().cpu() for name, tensor in autoencoder.state_dict().items()}
    return state, history


def autoencoder_from_state(state, image_shape, filters, embedding_dim, activation, device, hidden_layers):
    """Rebuild a trained autoencoder from its state dict, on ``device``.

    The state says which network it holds (the first weight of a dense
    autoencoder is a matrix, that of a convolutional one a stack of kernels),
    so a model comes back with the network it was fitted with, whatever
    ``autoencoder="auto"`` picked; the other arguments give its sizes.
    """
    first = next(tensor for name, tensor in state.items() if name.endswith(".weight"))
    network = "dense" if first.ndim == 2 else "conv"
    # Construction draws throwaway initial weights from torch's global
    # generator: fork it so that the caller's random state stays as it was.
    with seeded_global_rng(0, torch.device("cpu")):
        autoencoder = build_autoencoder(
            network, image_shape, filters, hidden_layers, embedding_dim, activation
        )
    autoencoder.load_state_dict(state)
    return place_module(autoencoder, device)


def _split_in_two(points, seed):
    """Split ``points`` by 2-means: each point's half (0 or 1) and the two halves' means.

    The joint phase re-seeds a dying cluster inside the widest one with it.
    """
    halves = KMeans(2, n_init=3, random_state=seed).fit(points)
    return halves.labels_, halves.cluster_centers_


class DeepConvEmbeddingClustering(ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator):
    """Deep convolutional embedding clustering (DCEC) of images.

    A convolutional autoencoder is pretrained to reconstruct the images; its
    embeddings are clustered with k-means; then encoder, decoder and cluster
    centres are trained jointly on the reconstruction loss plus ``gamma``
    times ``KL(P || Q)``, where ``Q`` is a Student's t soft assignment of the
    embeddings to the centres and ``P`` its sharpened target (Guo et al.,
    2017; applied to paintings by Castellano & Vessio, 2020).

    Rows of numbers with no image layout, such as the pooled features of
    :class:`~skdcec.PretrainedFeatures`, get a dense autoencoder instead, as
    in DEC and DELIUS (see ``autoencoder``).

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters.
    image_shape : tuple of int, default=None
        ``(height, width)`` or ``(height, width, channels)`` of the images
        when ``X`` is 2-D (one flattened channels-last image per row).
        ``None`` means square grayscale images when ``n_features`` is a perfect
        square, else a ``1 x n_features`` strip. Only the convolutional
        autoencoder uses it (see ``autoencoder``). Ignored shapes are an
        error: 3-D and 4-D ``X`` carry their own shape.
    autoencoder : {"auto", "conv", "dense"}, default="auto"
        The network. ``"conv"`` is DCEC's convolutional autoencoder, for
        images. ``"dense"`` is DEC's fully connected one (``hidden_layers``),
        for vectors such as the pooled features of a pretrained network
        (:class:`~skdcec.PretrainedFeatures`), as in DELIUS (Castellano &
        Vessio, 2022); like DEC's, it pretrains as a denoising autoencoder
        (20 % of the input values dropped; the joint phase and inference
        see them all): on the features of 1,250 paintings DCEC then beat
        KMeans on the same features on 9 seeds of 10, against 8 without.
        ``"auto"`` picks ``"dense"`` for 2-D ``X`` fitted with
        ``image_shape=None`` (rows of numbers with no known image layout)
        and ``"conv"`` for 3-D and 4-D ``X`` and for 2-D ``X`` with an
        ``image_shape``.
        So give flattened images their ``image_shape``: as rows, the 8x8
        digits got the dense network and NMI 0.765, 0.777 and 0.765 on three
        seeds, against the convolutional network's 0.849, 0.830 and 0.845.
    filters : tuple of int, default=(32, 64, 128)
        Output channels of the encoder's stride-2 convolutions (5x5 kernels,
        the last 3x3); the decoder mirrors them. Convolutional network only.
    hidden_layers : tuple of int, default=(128, 128, 256)
        Widths of the dense encoder's hidden layers; the decoder mirrors
        them. Dense network only. DEC and DELIUS use ``(500, 500, 2000)``; on
        the pooled features of 1,250 paintings the narrower default clustered
        better (NMI 0.68 against 0.63 over three seeds) and five times faster.
    embedding_dim : int, default=10
        Size of the embedding that is clustered.
    activation : {"relu", "elu", "leaky_relu"}, default="relu"
        Non-linearity of the hidden layers. The embedding and the
        reconstruction are linear.
    gamma : float, default=0.1
        Weight of the clustering loss against the reconstruction loss.
    alpha : float, default=1.0
        Degrees of freedom of the Student's t soft assignment.
    pretrain_epochs : int or "auto", default="auto"
        Epochs of autoencoder pretraining. ``"auto"`` is DCEC's 200 without
        ``augment`` and DEC-DA's 500 with it: reconstructing ever-new
        transformed copies is a harder task that keeps improving the
        embedding well past 200 epochs (on USPS, 500 epochs took the
        augmented clustering from ACC 0.89 to 0.99 on the same seed).
    max_iter : int, default=20000
        Most mini-batches of joint training.
    update_interval : int, default=140
        Mini-batches between recomputations of the target distribution on
        all samples.
    tol : float, default=1e-3
        Joint training stops when fewer than this fraction of labels changed
        between two target updates.
    batch_size : int, default=256
        Images per mini-batch.
    learning_rate : float, default=1e-3
        Adam's step size, in both phases.
    n_init : int, default=20
        Runs of k-means that initialise the centres (``init="k-means"``).
    init : {"k-means", "spectral"}, default="k-means"
        How the centres are initialised on the pretrained embeddings.
        ``"k-means"`` (DCEC's choice) takes the best of ``n_init`` k-means
        runs. ``"spectral"`` takes the means of the clusters that spectral
        clustering finds in the graph linking each embedding to its 10
        nearest neighbours: clusters that are chains of similar images (an
        object seen from turning angles, a motif in gradual variations) stay
        whole, where k-means cuts them into compact pieces. It costs a
        sparse eigen-decomposition, seconds for thousands of images and
        minutes for a hundred thousand.
    augment : bool or tuple of str, default=False
        DEC-DA-style training (Guo et al., 2018): the autoencoder learns from
        randomly transformed copies of the images, and in the joint phase the
        soft assignment Q of a batch comes from transformed images while the
        target P comes from clean ones.
        ``True`` selects shifts of up to 10 % of the side and rotations of up
        to 10 degrees, plus, for colour images, horizontal flips, random
        resized crops and mild colour jitter; a tuple names a selection of
        ``"shift"``, ``"rotate"``, ``"flip"``, ``"crop"`` and ``"jitter"``.
        Augmentation runs per batch on the training device, is seeded by
        ``random_state`` and never applies at predict time. ``False`` is the
        faithful DCEC. The transformations act on images, so ``augment``
        needs the convolutional network.
    reconstruction_target : {"augmented", "clean"}, default="augmented"
        What the autoencoder reconstructs from a transformed image when
        ``augment`` is on: the transformed image itself, as DEC-DA's code
        does, or the clean original, as its paper's wording suggests. The
        augmented target clustered better and converged in fewer iterations
        in our measurements (see the user guide). Ignored without ``augment``.
    device : str or torch.device, default="auto"
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``,
        ``"cuda:1"``, ``"mps"`` or a :class:`torch.device`.
    precision : {"auto", "float32", "bfloat16"}, default="auto"
        Arithmetic of training and inference: ``"auto"`` is bfloat16 autocast
        on CUDA devices that support it and float32 elsewhere.
    compile : bool, default=False
        Train through :func:`torch.compile`. It pays off for long runs on a
        GPU; compilation itself takes tens of seconds and a C++ compiler.
    memory : str or object with the joblib.Memory interface, default=None
        Where to cache the pretrained autoencoder. It depends on the data and
        the pretraining parameters but not on ``n_clusters``, so a search
        over ``n_clusters`` with a fixed ``random_state`` pretrains once per
        data set. With ``random_state=None`` every fit draws a new seed and
        the cache is never reused, and neither is one that another version
        of skdcec filled.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling, k-means and augmentation. An
        int makes results reproducible on the CPU; on a GPU, PyTorch may pick
        non-deterministic kernels. Global random states are never touched.
    verbose : int, default=0
        0 is silent; 1 reports progress on standard error.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Cluster of every training sample under the final weights.
    cluster_centers_ : ndarray of shape (n_clusters, embedding_dim)
        Cluster centres in the embedding space.
    autoencoder_ : torch.nn.Module
        The trained autoencoder, convolutional or dense (see ``autoencoder``).
    history_ : dict
        ``"pretrain"``: one record per epoch (``epoch``,
        ``reconstruction_loss`` and ``seconds``, the epoch's wall time, kept
        from the original fit when ``memory`` serves the pretraining);
        ``"clustering"``: one record per target update (``iteration``,
        ``reconstruction_loss``, ``clustering_loss``,
        ``label_change_fraction``, ``cluster_sizes`` and, at an update that
        found a cluster below a tenth of its initial size, ``relocations``:
        the clusters re-seeded by splitting the widest cluster in two).
    n_iter_ : int
        Mini-batches of joint training run.
    image_shape_ : tuple of int
        ``(height, width, channels)`` of the training images.
    input_dtype_ : numpy.dtype
        dtype of the training images: ``uint8`` is scaled by 1/255, any other
        is standardised with ``input_mean_`` and ``input_scale_``.
    input_mean_ : ndarray of shape (channels,)
        Per-channel mean used to standardise non-``uint8`` input
        (0 for ``uint8``, which is mapped to ``[0, 1]``).
    input_scale_ : ndarray of shape (channels,)
        Per-channel standard deviation used to standardise non-``uint8``
        input (255 for ``uint8``).
    device_ : torch.device
        Device the model was trained on.
    n_features_in_ : int
        Number of features (pixels times channels) seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when ``X`` has string column names.

    See Also
    --------
    sklearn.cluster.KMeans : k-means on the raw features.

    Notes
    -----
    ``score`` and any silhouette or Calinski-Harabasz index measured in the
    learned embedding are inflated: the clustering loss compacts the very
    space they are measured in. Compare methods in a shared space too.

    Launched by ``torchrun`` (``WORLD_SIZE`` above 1), ``fit`` trains one
    model data-parallel with :class:`~torch.nn.parallel.DistributedDataParallel`,
    with no change to the code: every process passes the same ``X`` and
    parameters and trains on its part of every mini-batch (``batch_size``
    counts the images of one step over all processes, so the run takes the
    steps a single process would); k-means runs on rank 0 and its centres
    are broadcast; the target is computed from embeddings computed in shards
    and gathered. Every process ends with the same fitted model. Unless the
    default process group already exists, ``fit`` initialises it from
    torchrun's environment for its own use and destroys it when done:
    ``gloo`` on CPU, ``nccl`` on CUDA with one GPU per process
    (``cuda:LOCAL_RANK``). ``memory`` must then give every process the same
    hits and misses: None, one shared folder, or folders with the same
    history.

    References
    ----------
    X. Guo, X. Liu, E. Zhu, J. Yin. Deep Clustering with Convolutional
    Autoencoders. ICONIP 2017.

    G. Castellano, G. Vessio. Deep Convolutional Embedding for Digitized
    Painting Clustering. ICPR 2020.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skdcec import DeepConvEmbeddingClustering
    >>> X = load_digits().data[:200]
    >>> dcec = DeepConvEmbeddingClustering(
    ...     n_clusters=10, pretrain_epochs=5, max_iter=20, random_state=0)
    >>> dcec.fit(X).labels_.shape
    (200,)
    >>> dcec.transform(X).shape
    (200, 10)
    """

    _parameter_constraints: dict = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "image_shape": [None, tuple, list],
        "autoencoder": [StrOptions({"auto", "conv", "dense"})],
        "filters": [tuple, list],
        "hidden_layers": [tuple, list],
        "embedding_dim": [Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "gamma": [Interval(Real, 0, None, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "pretrain_epochs": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "update_interval": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "init": [StrOptions({"k-means", "spectral"})],
        "augment": ["boolean", tuple, list],
        "reconstruction_target": [StrOptions({"augmented", "clean"})],
        "device": [str, torch.device],
        "precision": [StrOptions({"auto", "float32", "bfloat16"})],
        "compile": ["boolean"],
        "memory": [None, str, HasMethods(["cache"])],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_clusters=8,
        *,
        image_shape=None,
        autoencoder="auto",
        filters=(32, 64, 128),
        hidden_layers=(128, 128, 256),
        embedding_dim=10,
        activation="relu",
        gamma=0.1,
        alpha=1.0,
        pretrain_epochs="auto",
        max_iter=20000,
        update_interval=140,
        tol=1e-3,
        batch_size=256,
        learning_rate=1e-3,
        n_init=20,
        init="k-means",
        augment=False,
        reconstruction_target="augmented",
        device="auto",
        precision="auto",
        compile=False,
        memory=None,
        random_state=None,
        verbose=0,
    ):
        self.n_clusters = n_clusters
        self.image_shape = image_shape
        self.autoencoder = autoencoder
        self.filters = filters
        self.hidden_layers = hidden_layers
        self.embedding_dim = embedding_dim
        self.activation = activation
        self.gamma = gamma
        self.alpha = alpha
        self.pretrain_epochs = pretrain_epochs
        self.max_iter = max_iter
        self.update_interval = update_interval
        self.tol = tol
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.n_init = n_init
        self.init = init
        self.augment = augment
        self.reconstruction_target = reconstruction_target
        self.device = device
        self.precision = precision
        self.compile = compile
        self.memory = memory
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Pretrain the autoencoder, initialise centres, train jointly.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n_samples, height, width) \
                or (n_samples, height, width, channels)
            Images: flattened channels-last rows, grayscale images or
            channels-last colour images. ``uint8`` is mapped to ``[0, 1]``;
            other dtypes are standardised per channel. Memory maps are read
            batch by batch.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : DeepConvEmbeddingClustering
            The fitted estimator.

        Examples
        --------
        >>> from sklearn.datasets import load_digits
        >>> from skdcec import DeepConvEmbeddingClustering
        >>> X = load_digits().images[:100]
        >>> dcec = DeepConvEmbeddingClustering(3, pretrain_epochs=2, max_iter=10,
        ...                                    random_state=0).fit(X)
        >>> dcec.labels_.shape, dcec.cluster_centers_.shape
        ((100,), (3, 10))
        >>> sorted(dcec.history_)
        ['clustering', 'pretrain']
        """
        with cpu_threads():
            return self._fit(X)

    def _fit(self, X):
        # validate_data records n_features_in_ and feature_names_in_ on the
        # estimator it checks: record them on a blank twin, and copy them over
        # only once training has succeeded.
        features = type(self)()
        X, image_shape, input_ndim = self._validate_images(X, record_on=features)
        n_samples = X.shape[0]
        if n_samples < self.n_clusters:
            raise ValueError(
                f"n_samples={n_samples} should be >= n_clusters={self.n_clusters}. "
                "Pass more images or lower n_clusters."
            )
        if self.init == "spectral" and n_samples <= self.n_clusters and self.n_clusters > 1:
            raise ValueError(
                f'init="spectral" needs more images than clusters, but n_samples={n_samples} '
                f"and n_clusters={self.n_clusters}; pass more images, lower n_clusters or use "
                'init="k-means".'
            )
        network = self._network(input_ndim)
        filters = self._check_filters()
        hidden_layers = self._check_hidden_layers()
        augmentations = self._check_augment(image_shape[2])
        if augmentations and network == "dense":
            picked = ""
            if self.autoencoder == "auto":
                picked = " (autoencoder='auto' picks it for 2-D X without image_shape)"
            raise ValueError(
                f"augment={self.augment!r} transforms images, but the dense autoencoder{picked} "
                "takes vectors; pass augment=False, or pass images (3-D/4-D X, or 2-D X with "
                "image_shape) with autoencoder='conv'."
            )
        reconstruct_augmented = bool(augmentations) and self.reconstruction_target == "augmented"
        pretrain_epochs = resolve_pretrain_epochs(self.pretrain_epochs, bool(augmentations))
        report = functools.partial(self._report, pretrain_epochs=pretrain_epochs) if self.verbose else None
        device = resolve_device(self.device)
        parallel = None
        if launched_by_torchrun():
            parallel = DataParallel(device)
            parallel.check_sizes(n_samples, self.batch_size)
            device = parallel.device
        precision = autocast_dtype(self.precision, device)
        seeds = self._draw_seeds()
        if parallel is not None:
            # Without an int random_state every process drew its own seeds.
            seeds = parallel.broadcast_object(seeds)
        pretrain_seed, kmeans_seed, clustering_seed = seeds

        n_channels = image_shape[2]
        if X.dtype == np.uint8:
            mean, std = np.zeros(n_channels), np.full(n_channels, 255.0)
        else:
            mean, std = channel_statistics(X, n_channels)
        data = ImageBatches(X, image_shape, mean, std, device)

        from skdcec._version import __version__

        pretrained = check_memory(self.memory).cache(
            _pretrained_autoencoder_state, ignore=["data", "parallel", "callback"]
        )
        cache_key = (
            X,
            image_shape,
            mean,
            std,
            network,
            tuple(filters),
            hidden_layers,
            self.embedding_dim,
            self.activation,
            pretrain_epochs,
            self.batch_size,
            self.learning_rate,
            self.precision,
            self.compile,
            tuple(sorted(augmentations)),
            reconstruct_augmented,
            pretrain_seed,
            str(device),
            __version__,
        )
        with pretraining_lock(self.memory, cache_key):
            state, pretrain_history = pretrained(
                *cache_key, data=data, parallel=parallel, callback=report
            )
        autoencoder = autoencoder_from_state(
            state, image_shape, filters, self.embedding_dim, self.activation, device, hidden_layers
        )

        inference_batch_size = self._inference_batch_size(autoencoder)
        embeddings = embed(
            autoencoder, data, batch_size=inference_batch_size, precision=precision, parallel=parallel
        )
        if parallel is None or parallel.is_main:
            centers = self._initial_centers(embeddings.cpu().numpy().astype(np.float64), kmeans_seed)
        else:
            centers = torch.empty(self.n_clusters, self.embedding_dim)
        if parallel is not None:
            centers = parallel.broadcast(centers.to(device)).cpu()
        clustering_layer = ClusteringLayer(centers, self.alpha).to(device)

        result = train_clustering(
            torch.compile(autoencoder) if self.compile else autoencoder,
            clustering_layer,
            data,
            gamma=self.gamma,
            max_iter=self.max_iter,
            update_interval=self.update_interval,
            tol=self.tol,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            generator=make_generator(clustering_seed, torch.device("cpu")),
            inference_batch_size=inference_batch_size,
            precision=precision,
            augmentations=augmentations,
            augment_generator=make_generator(
                clustering_seed if parallel is None else parallel.rank_seed(clustering_seed), device
            ),
            reconstruct_augmented=reconstruct_augmented,
            split_cluster=_split_in_two,
            parallel=parallel,
            callback=report,
        )
        if parallel is not None:
            parallel.close()
        labels = result.labels.cpu().numpy().astype(np.intp)
        self._warn_about_convergence(result, labels)

        # Set everything at the end: an interrupted fit leaves a previously
        # fitted estimator as it was and an unfitted one unfitted.
        autoencoder.eval()
        self.autoencoder_ = autoencoder
        self.cluster_centers_ = clustering_layer.centers.detach().cpu().numpy().astype(np.float64)
        self.labels_ = labels
        self.history_ = {"pretrain": pretrain_history, "clustering": result.history}
        self.n_iter_ = result.n_iter
        self.image_shape_ = image_shape
        self.input_mean_ = mean
        self.input_scale_ = std
        self.device_ = device
        self.n_features_in_ = features.n_features_in_
        if hasattr(features, "feature_names_in_"):
            self.feature_names_in_ = features.feature_names_in_
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self._input_ndim = input_ndim
        self._input_dtype = X.dtype
        return self

    def _initial_centers(self, embeddings, seed):
        """Initial cluster centres in the embedding: k-means, or the means of spectral clusters."""
        if self.init == "k-means" or self.n_clusters == 1:
            kmeans = KMeans(self.n_clusters, n_init=self.n_init, random_state=seed).fit(embeddings)
            return torch.as_tensor(kmeans.cluster_centers_, dtype=torch.float32)
        spectral = SpectralClustering(
            self.n_clusters,
            affinity="nearest_neighbors",
            n_neighbors=min(SPECTRAL_NEIGHBORS, len(embeddings) - 1),
            assign_labels="cluster_qr",
            random_state=seed,
        )
        labels = spectral.fit_predict(embeddings)
        sizes = np.bincount(labels, minlength=self.n_clusters)
        centers = np.zeros((self.n_clusters, embeddings.shape[1]))
        np.add.at(centers, labels, embeddings)
        # A spectral cluster that received no sample is seeded at a sample drawn
        # at random, so that every centre lies in the data.
        empty = np.flatnonzero(sizes == 0)
        drawn = check_random_state(seed).choice(len(embeddings), len(empty), replace=False)
        centers[empty] = embeddings[drawn]
        sizes[empty] = 1
        return torch.as_tensor(centers / sizes[:, None], dtype=torch.float32)

    def _warn_about_convergence(self, result, labels):
        sizes = np.bincount(labels, minlength=self.n_clusters)
        if result.collapsed:
            collapsed_sizes = result.history[-1]["cluster_sizes"]
            n_relocations = sum(len(record.get("relocations", ())) for record in result.history)
            warnings.warn(
                f"Clusters emptied out during joint training (sizes {collapsed_sizes}) after "
                f"{n_relocations} relocation(s) of dying centres into the widest clusters; "
                f"training stopped at iteration {result.n_iter} and went back to the "
                f"solution of iteration {result.restored_iter}, the last before the "
                f"collapse (sizes {sizes.tolist()}). Try a smaller "
                "learning_rate or gamma, longer pretraining, or fewer clusters.",
                ConvergenceWarning,
            )
        elif not result.converged:
            warnings.warn(
                f"Joint training reached max_iter={self.max_iter} before fewer than "
                f"tol={self.tol} of the labels changed between updates. Increase "
                "max_iter or tol.",
                ConvergenceWarning,
            )
        if (sizes == 0).any() and not result.collapsed:
            warnings.warn(
                f"{int((sizes == 0).sum())} of {self.n_clusters} clusters are empty "
                f"(sizes {sizes.tolist()}). Lower n_clusters or check for duplicate "
                "images.",
                ConvergenceWarning,
            )

    def _draw_seeds(self):
        if self.random_state is None:
            # Fresh entropy without touching NumPy's global generator.
            rng = np.random.default_rng()
            return rng.integers(np.iinfo(np.int32).max, size=3).tolist()
        rng = check_random_state(self.random_state)
        return rng.randint(np.iinfo(np.int32).max, size=3).tolist()

    def _check_filters(self):
        filters = list(self.filters)
        if not filters or not all(isinstance(f, Integral) and f > 0 for f in filters):
            raise ValueError(
                f"filters={self.filters!r} must be a non-empty tuple of positive ints, "
                "e.g. (32, 64, 128)."
            )
        return filters

    def _network(self, input_ndim):
        """The network fit builds: ``autoencoder``, with ``"auto"`` resolved from the input."""
        if self.autoencoder != "auto":
            return self.autoencoder
        return "dense" if input_ndim == 2 and self.image_shape is None else "conv"

    def _check_hidden_layers(self):
        hidden_layers = tuple(self.hidden_layers)
        if not all(isinstance(width, Integral) and width > 0 for width in hidden_layers):
            raise ValueError(
                f"hidden_layers={self.hidden_layers!r} must be a tuple of positive ints, "
                "e.g. (500, 500, 2000), or () for a single linear layer each way."
            )
        return hidden_layers

    def _check_augment(self, n_channels):
        if not isinstance(self.augment, bool):
            if not all(isinstance(name, str) for name in self.augment):
                raise ValueError(
                    f"augment={self.augment!r} must be True, False or a tuple of names from "
                    f"{sorted(AUGMENTATIONS)}, e.g. augment=('shift', 'rotate')."
                )
            unknown = set(self.augment) - AUGMENTATIONS
            if unknown:
                raise ValueError(
                    f"augment={self.augment!r} names unknown augmentations {sorted(unknown)}; "
                    f"choose from {sorted(AUGMENTATIONS)}, or pass True or False."
                )
        return resolve_augmentations(self.augment, n_channels)

    def _report(self, stage, record, pretrain_epochs):
        if stage == "pretrain":
            message = (
                f"[DCEC] pretrain epoch {record['epoch']}/{pretrain_epochs}: "
                f"reconstruction loss {record['reconstruction_loss']:.5f}"
            )
        else:
            change = record["label_change_fraction"]
            message = (
                f"[DCEC] iteration {record['iteration']}: label change "
                f"{'-' if change is None else f'{change:.4f}'}, sizes {record['cluster_sizes']}"
            )
            for relocation in record.get("relocations", ()):
                message += (
                    f"; cluster {relocation['cluster']} was dying and took half of cluster "
                    f"{relocation['split_from']} ({relocation['size_before_split']} images)"
                )
        sys.stderr.write(message + "\n")

    # ----------------------------------------------------------- validation

    def _validate_images(self, X, *, record_on=None):
        """Validate ``X``; return it 2-D, with its image shape and ndim.

        ``record_on`` is the estimator on which ``validate_data`` records the
        features of ``X`` when fitting (a blank twin, so that an interrupted
        fit leaves this estimator as it was); ``None`` checks ``X`` against the
        features recorded on this fitted estimator.
        """
        reset = record_on is not None
        if getattr(X, "ndim", None) is None:
            # Nested lists (of rows, images or PIL images) are arrays too.
            X = np.asarray(X)
        X = self._check_dtype(X)
        ndim = X.ndim
        nd_shape = None
        if ndim in (3, 4):
            nd_shape = tuple(X.shape[1:]) if ndim == 4 else (*X.shape[1:], 1)
            if 0 in nd_shape:
                raise ValueError(
                    f"X holds images of shape {tuple(X.shape[1:])}, which have no pixels; "
                    "pass images whose height, width and channels are at least 1."
                )
            if not reset and nd_shape != self.image_shape_:
                raise ValueError(self._shape_mismatch(nd_shape))
            X = np.reshape(X, (X.shape[0], math.prod(nd_shape)))
        elif ndim < 2:
            # The start of the message is scikit-learn's own.
            raise ValueError(
                f"Expected 2D array, got {ndim}D array instead. Reshape your data to one image "
                "per row: (n_samples, n_features), (n_samples, height, width) or (n_samples, "
                "height, width, channels); X.reshape(1, -1) makes one flattened image a row."
            )
        elif ndim > 4:
            raise ValueError(
                f"X has {ndim} dimensions; pass (n_samples, n_features), "
                "(n_samples, height, width) or (n_samples, height, width, channels)."
            )
        elif ndim == 2 and not reset and not sp.issparse(X) and X.shape[1] != self.n_features_in_:
            # The start of the message is scikit-learn's own.
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input: one flattened image of shape "
                f"{self.image_shape_} per row. Resize the images to the training shape."
            )
        X = validate_data(
            record_on if reset else self,
            X,
            reset=reset,
            dtype=[np.float64, np.float32, np.uint8],
            ensure_min_samples=1,
            ensure_all_finite=False,
        )
        _check_values(X)
        if not reset:
            self._check_input_kind(X)
            return X, self.image_shape_, ndim
        if nd_shape is not None:
            if self.image_shape is not None and tuple(self._complete(self.image_shape)) != nd_shape:
                raise ValueError(
                    f"image_shape={self.image_shape!r} does not match the shape of the "
                    f"images in X, {nd_shape}; leave image_shape=None for 3-D or 4-D X."
                )
            return X, nd_shape, ndim
        return X, self._plan_image_shape(X.shape[1]), 2

    def _check_input_kind(self, X):
        """Refuse uint8 images for a model fitted on floats, and floats for one fitted on uint8.

        The two are scaled differently (uint8 divided by 255, floats
        standardised with the training statistics): a mix-up would give
        wrong labels without a word.
        """
        fitted_uint8 = np.dtype(self._input_dtype) == np.uint8
        if (X.dtype == np.uint8) == fitted_uint8:
            return
        if fitted_uint8:
            raise ValueError(
                f"X has dtype {X.dtype} but the model was fitted on uint8 pixels (0-255), which it "
                "scales differently; pass uint8 images, e.g. np.rint(X * 255).astype(np.uint8) for "
                "floats in [0, 1]."
            )
        raise ValueError(
            f"X has dtype uint8 but the model was fitted on {np.dtype(self._input_dtype)} images, "
            "which it standardises with their training statistics; pass the same kind of values "
            "as in fit, e.g. X.astype(np.float32) (and the same scale, such as / 255, if fit had it)."
        )

    @staticmethod
    def _check_dtype(X):
        """Refuse complex and text arrays; turn object arrays of numbers into floats."""
        dtype = getattr(X, "dtype", None)
        if not isinstance(dtype, np.dtype):
            return X
        if dtype.kind == "c":
            raise ValueError(
                f"Complex data not supported: X has dtype {dtype}, but images are real. "
                "Pass np.abs(X) or X.real."
            )
        if dtype.kind in "USV":
            raise ValueError(
                f"X has dtype {dtype}, which holds text or raw bytes, not pixel values; "
                "pass images as numbers: uint8 pixels or floats."
            )
        if dtype.kind == "O":
            try:
                return np.asarray(X, dtype=np.float64)
            except ValueError as exc:
                # A TypeError (an element that is no string or number) passes
                # through as NumPy words it.
                raise ValueError(
                    f"X has dtype object and holds values that are not numbers ({exc}); "
                    "pass images as numbers: uint8 pixels or floats."
                ) from exc
        return X

    def _shape_mismatch(self, nd_shape):
        """Say how images of ``nd_shape`` differ from the training images, and the fix."""
        fitted = self.image_shape_
        if nd_shape[2] != fitted[2]:
            color = {1: " (load_images(color='gray'))", 3: " (load_images(color='rgb'))"}.get(fitted[2], "")
            fix = f"convert the images to {fitted[2]} channel(s){color}"
        else:
            fix = f"resize the images to the training shape, {fitted[0]}x{fitted[1]}"
        return f"X holds images of shape {nd_shape} but the model was fitted on {fitted}; {fix}."

    @staticmethod
    def _complete(image_shape):
        return (*image_shape, 1) if len(image_shape) == 2 else tuple(image_shape)

    def _plan_image_shape(self, n_features):
        if self.image_shape is None:
            side = math.isqrt(n_features)
            return (side, side, 1) if side * side == n_features else (1, n_features, 1)
        shape = tuple(self.image_shape)
        if len(shape) not in (2, 3) or not all(isinstance(s, Integral) and s > 0 for s in shape):
            raise ValueError(
                f"image_shape={self.image_shape!r} must be (height, width) or "
                "(height, width, channels) of positive ints."
            )
        shape = self._complete(shape)
        if math.prod(shape) != n_features:
            raise ValueError(
                f"image_shape={self.image_shape!r} holds {math.prod(shape)} values but X "
                f"has n_features={n_features}; pass the shape of one image, whose "
                "height * width * channels equals n_features."
            )
        return shape

    # ------------------------------------------------------------ inference

    @staticmethod
    def _inference_batch_size(autoencoder):
        """The one batch shape of every inference pass of ``autoencoder``.

        A function of the image shape only, so that a row's embedding never
        depends on how many rows are predicted with it (see ``embed``): about
        ``INFERENCE_PIXELS_PER_BATCH`` pixels, at most
        ``MAX_INFERENCE_BATCH_SIZE`` images.
        """
        height, width, _ = autoencoder.image_shape
        return int(min(MAX_INFERENCE_BATCH_SIZE, max(1, INFERENCE_PIXELS_PER_BATCH // (height * width))))

    def _inference_device(self):
        return next(self.autoencoder_.parameters()).device

    def _embeddings(self, X):
        """Embeddings of validated 2-D ``X``, one inference batch at a time.

        Yields ``(start, z)``: the position of the batch's first row and its
        float32 embeddings. Memory stays that of one batch however many rows
        ``X`` (a memory map, say) has, as long as the caller writes each
        batch's result into an output allocated up front: small per-batch
        results kept alive between the batches' large temporaries fragment the
        heap, which then grows with the number of batches.
        """
        device = self._inference_device()
        batch_size = self._inference_batch_size(self.autoencoder_)
        precision = autocast_dtype(self.precision, device)
        for start in range(0, X.shape[0], batch_size):
            data = ImageBatches(
                X[start : start + batch_size], self.image_shape_, self.input_mean_, self.input_scale_, device
            )
            with cpu_threads():
                z = embed(self.autoencoder_, data, batch_size=batch_size, precision=precision)
            yield start, z

    def _embed(self, X):
        """Embeddings of validated 2-D ``X`` as one float32 tensor."""
        embeddings = torch.empty((X.shape[0], self.cluster_centers_.shape[1]), dtype=torch.float32)
        for start, z in self._embeddings(X):
            embeddings[start : start + len(z)] = z.cpu()
        return embeddings

    def _log_proba(self, z):
        """Float64 log soft assignment of embeddings ``z`` to the fitted centres."""
        # Built on the CPU: MPS has no float64, and the chunked assignment
        # moves the centres to z's device in the widest dtype it has.
        return log_soft_assignment_in_chunks(z, torch.as_tensor(self.cluster_centers_), self.alpha)

    def predict(self, X):
        """Cluster of each image: the most probable centre under ``q``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n_samples, height, width) \
                or (n_samples, height, width, channels)
            Images laid out as in ``fit``.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Cluster index of each image.

        Examples
        --------
        >>> from sklearn.datasets import load_digits
        >>> from skdcec import DeepConvEmbeddingClustering
        >>> X = load_digits().images[:100]
        >>> dcec = DeepConvEmbeddingClustering(3, pretrain_epochs=2, max_iter=10,
        ...                                    random_state=0).fit(X)
        >>> dcec.predict(X[:5]).shape
        (5,)
        >>> bool((dcec.predict(X) == dcec.labels_).all())
        True
        """
        check_is_fitted(self)
        X, _, _ = self._validate_images(X)
        labels = np.empty(X.shape[0], dtype=np.intp)
        for start, z in self._embeddings(X):
            labels[start : start + len(z)] = self._log_proba(z).argmax(dim=1).cpu().numpy()
        return labels

    def predict_proba(self, X):
        """Student's t soft assignment ``q`` of each image to each cluster.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n_samples, height, width) \
                or (n_samples, height, width, channels)
            Images laid out as in ``fit``.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_clusters)
            Rows are non-negative and sum to one.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.datasets import load_digits
        >>> from skdcec import DeepConvEmbeddingClustering
        >>> X = load_digits().images[:100]
        >>> dcec = DeepConvEmbeddingClustering(3, pretrain_epochs=2, max_iter=10,
        ...                                    random_state=0).fit(X)
        >>> proba = dcec.predict_proba(X[:5])
        >>> proba.shape
        (5, 3)
        >>> bool(np.allclose(proba.sum(axis=1), 1.0))
        True
        """
        check_is_fitted(self)
        X, _, _ = self._validate_images(X)
        proba = np.empty((X.shape[0], len(self.cluster_centers_)))
        for start, z in self._embeddings(X):
            proba[start : start + len(z)] = self._log_proba(z).exp().cpu().numpy()
        return proba / proba.sum(axis=1, keepdims=True)

    def transform(self, X):
        """Embed images in the learned space.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n_samples, height, width) \
                or (n_samples, height, width, channels)
            Images laid out as in ``fit``.

        Returns
        -------
        X_new : ndarray of shape (n_samples, embedding_dim)
            Embeddings; float32 for float32 input, float64 otherwise.

        Examples
        --------
        >>> from sklearn.datasets import load_digits
        >>> from skdcec import DeepConvEmbeddingClustering
        >>> X = load_digits().images[:100]
        >>> dcec = DeepConvEmbeddingClustering(3, pretrain_epochs=2, max_iter=10,
        ...                                    random_state=0).fit(X)
        >>> dcec.transform(X[:5]).shape
        (5, 10)
        >>> dcec.get_feature_names_out()[:2].tolist()
        ['deepconvembeddingclustering0', 'deepconvembeddingclustering1']
        """
        check_is_fitted(self)
        X, _, _ = self._validate_images(X)
        dtype = np.float32 if X.dtype == np.float32 else np.float64
        return self._embed(X).cpu().numpy().astype(dtype)

    def inverse_transform(self, X):
        """Decode embeddings to images, e.g. ``cluster_centers_`` to prototypes.

        Parameters
        ----------
        X : array-like of shape (n_samples, embedding_dim)
            Points in the embedding space.

        Returns
        -------
        images : ndarray
            Decoded images in the layout and scale of the training input:
            2-D rows, ``(n, height, width)`` or ``(n, height, width, channels)``;
            ``uint8`` when the training images were ``uint8``.

        Examples
        --------
        Decode the cluster centres into prototype images, in the layout of
        the training images (here ``(n, 8, 8)``):

        >>> from sklearn.datasets import load_digits
        >>> from skdcec import DeepConvEmbeddingClustering
        >>> X = load_digits().images[:100]
        >>> dcec = DeepConvEmbeddingClustering(3, pretrain_epochs=2, max_iter=10,
        ...                                    random_state=0).fit(X)
        >>> dcec.inverse_transform(dcec.cluster_centers_).shape
        (3, 8, 8)
        """
        check_is_fitted(self)
        Z = check_array(X, dtype=[np.float64, np.float32])
        if Z.shape[1] != self.embedding_dim:
            raise ValueError(
                f"X has {Z.shape[1]} features but the embedding has "
                f"embedding_dim={self.embedding_dim}; pass embeddings from transform."
            )
        device = self._inference_device()
        batch_size = self._inference_batch_size(self.autoencoder_)
        height, width, channels = self.image_shape_
        # Decoded one inference batch at a time into an output allocated up
        # front, so that the decoder's activations stay those of one batch.
        images = np.empty((len(Z), height, width, channels))
        with cpu_threads(), torch.inference_mode():
            for start in range(0, len(Z), batch_size):
                part = torch.as_tensor(Z[start : start + batch_size], dtype=torch.float32, device=device)
                decoded = self.autoencoder_.decode(part).permute(0, 2, 3, 1)
                images[start : start + len(part)] = decoded.double().cpu().numpy()
        images = images * self.input_scale_ + self.input_mean_
        if self._input_dtype == np.uint8:
            images = np.clip(np.rint(images), 0, 255).astype(np.uint8)
        if self._input_ndim == 2:
            return images.reshape(len(Z), -1)
        if self._input_ndim == 3:
            return images[..., 0]
        return images

    def score(self, X, y=None):
        """Mean silhouette of the predicted clusters in the embedding space.

        Higher is better and bounded in ``[-1, 1]``, so it serves
        ``GridSearchCV`` over ``n_clusters``. It is 0 when fewer than two
        clusters, or as many clusters as samples, are predicted (silhouette is
        undefined there). Above 10,000 samples a fixed random subsample is
        scored. The clustering loss compacts the embedding, so the value is
        inflated compared with a score in a space shared with other methods.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n_samples, height, width) \
                or (n_samples, height, width, channels)
            Images laid out as in ``fit``.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        score : float
            Mean silhouette coefficient.

        Examples
        --------
        >>> from sklearn.datasets import load_digits
        >>> from skdcec import DeepConvEmbeddingClustering
        >>> X = load_digits().images[:100]
        >>> dcec = DeepConvEmbeddingClustering(3, pretrain_epochs=2, max_iter=10,
        ...                                    random_state=0).fit(X)
        >>> -1.0 <= dcec.score(X) <= 1.0
        True
        """
        check_is_fitted(self)
        X, _, _ = self._validate_images(X)
        z = self._embed(X)
        labels = self._log_proba(z).argmax(dim=1).cpu().numpy()
        silhouette, _ = clustering_scores(z.cpu().numpy().astype(np.float64), labels)
        return 0.0 if silhouette is None else silhouette

    def save(self, path):
        """Save the fitted model to the folder ``path`` in a format that runs no code.

        Parameters are stored as JSON and weights and arrays as plain tensors
        read back with ``torch.load(weights_only=True)``; see
        :func:`skdcec.load`. The folder is written under a temporary name and
        renamed when complete.

        Parameters
        ----------
        path : str or os.PathLike
            Folder to create.

        Returns
        -------
        self : DeepConvEmbeddingClustering
            The estimator, unchanged.

        Examples
        --------
        >>> import os
        >>> import tempfile
        >>> import skdcec
        >>> from sklearn.datasets import load_digits
        >>> from skdcec import DeepConvEmbeddingClustering
        >>> X = load_digits().images[:100]
        >>> dcec = DeepConvEmbeddingClustering(3, pretrain_epochs=2, max_iter=10,
        ...                                    random_state=0).fit(X)
        >>> folder = tempfile.TemporaryDirectory()
        >>> path = os.path.join(folder.name, "model")
        >>> _ = dcec.save(path)
        >>> sorted(os.listdir(path))
        ['model.json', 'state.pt']
        >>> skdcec.load(path).n_clusters
        3
        >>> folder.cleanup()
        """
        from skdcec._persistence import save

        check_is_fitted(self)
        save(self, path)
        return self

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

    @property
    def _n_features_out(self):
        return self.embedding_dim

    # ------------------------------------------------------------ pickling

    def __getstate__(self):
        # A copy: object.__getstate__ may hand back the instance's own __dict__.
        state = dict(super().__getstate__())
        if "autoencoder_" in state:
            # Plain CPU tensors: a model fitted on a GPU unpickles anywhere.
            state["autoencoder_"] = {
                name: tensor.detach().cpu() for name, tensor in self.autoencoder_.state_dict().items()
            }
        return state

    def __setstate__(self, state):
        weights = state.get("autoencoder_")
        super().__setstate__(state)
        if isinstance(weights, dict):
            device = self.device_
            if device.type != "cpu":
                try:
                    resolve_device(device)
                except ValueError:
                    device = torch.device("cpu")
            self.autoencoder_ = autoencoder_from_state(
                weights,
                self.image_shape_,
                list(self.filters),
                self.embedding_dim,
                self.activation,
                device,
                tuple(self.hidden_layers),
            ).eval()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
