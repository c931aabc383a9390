"""The scikit-learn estimator: validates, plans shapes and delegates to the torch core."""

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import metadata_routing
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted

from skdcec._autoencoder import ACTIVATIONS
from skdcec._clustering import log_soft_assignment_in_chunks
from skdcec._device import cpu_threads
from skdcec._fitted import FittedStateMixin, storable_params
from skdcec._fitting import fit_model
from skdcec._image_input import ImageInputMixin
from skdcec._inference import decode_in_batches, embeddings_in_batches
from skdcec._persistence import write_model
from skdcec.metrics import clustering_scores


class DeepConvEmbeddingClustering(
    FittedStateMixin,
    ImageInputMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    ClusterMixin,
    BaseEstimator,
):
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
        Epochs of autoencoder pretraining. ``"auto"`` is at most DCEC's 200
        without ``augment`` and DEC-DA's 500 with it (reconstructing
        ever-new transformed copies is a harder task that keeps improving the
        embedding well past 200 epochs: on USPS, 500 epochs took the
        augmented clustering from ACC 0.89 to 0.99 on the same seed), and
        stops earlier, though not before half of them nor before 1,000
        mini-batches, once the mean reconstruction loss of 20 epochs is less
        than 5 % below that of the 20 before. The dense network (feature
        vectors) trains at least 1,000 mini-batches, more epochs when the
        data are few. An int trains exactly that many epochs (DCEC: 200).
    max_iter : int or "auto", default="auto"
        Most mini-batches of joint training. ``"auto"`` is a number of
        passes over the data (see the user guide's *Budgets that scale with
        the data*), at most DCEC's 20,000 mini-batches. DCEC's own setting
        is ``max_iter=20000``.
    update_interval : int or "auto", default="auto"
        Mini-batches between recomputations of the target distribution on
        all samples. ``"auto"`` is 5 passes over the data, at most DCEC's
        140 mini-batches; DCEC's own setting is ``update_interval=140``.
    tol : float, default=1e-3
        Joint training stops when fewer than this fraction of labels changed
        between two target updates.
    n_iter_no_change : int or None, default=None
        With an int, joint training also stops when the number of labels
        that changed between two target updates has not fallen below its
        lowest value so far for this many updates in a row: on a few hundred
        images in many clusters a handful of borderline images can keep
        swapping clusters, and ``tol`` is never reached. It trades quality
        for time (on the digits, 5 stopped after 10 passes at NMI 0.794).
        ``None`` stops on ``tol`` and ``max_iter`` only, as DCEC does.
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
        whole, where k-means cuts them into compact pieces. It is the
        better start on a few hundred images in many clusters and the worse
        one on paintings' features (see the user guide's *What to expect:
        measured quality*). It costs a sparse eigen-decomposition, seconds for
        thousands of images and minutes for a hundred thousand.
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
    parameters, and every process ends with the same fitted model; ``memory``
    must then give every process the same hits and misses. The user guide's
    *Scaling out* page has the details.

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

    # fit's callback is a progress hook, not data: no set_fit_request for it.
    __metadata_request__fit = {"callback": metadata_routing.UNUSED}

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
        "max_iter": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "update_interval": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), None],
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
        max_iter="auto",
        update_interval="auto",
        tol=1e-3,
        n_iter_no_change=None,
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
        self.n_iter_no_change = n_iter_no_change
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
    def fit(self, X, y=None, *, callback=None):
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
        callback : callable, default=None
            Progress hook, called as ``callback(stage, record)`` after every
            pretraining epoch (``stage="pretrain"``; ``record`` has
            ``epoch``, ``n_epochs``, ``reconstruction_loss`` and ``seconds``)
            and every target update of the joint phase
            (``stage="clustering"``; ``record`` holds the keys of a
            ``history_["clustering"]`` record plus ``max_iter`` and
            ``pretrain_epochs``, which is 0 when pretraining was skipped).
            An epoch served by ``memory`` is not reported. Raising in it
            (``KeyboardInterrupt``, say) stops ``fit`` and leaves the
            estimator as it was.

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

        Follow the training with ``callback``:

        >>> losses = []
        >>> def follow(stage, record):
        ...     if stage == "pretrain":
        ...         losses.append(record["reconstruction_loss"])
        >>> _ = DeepConvEmbeddingClustering(3, pretrain_epochs=2, max_iter=10,
        ...                                 random_state=0).fit(X, callback=follow)
        >>> len(losses)
        2
        """
        with cpu_threads():
            return self._fit(X, callback)

    def _fit(self, X, callback):
        # validate_data records n_features_in_ and feature_names_in_ on the
        # estimator it checks: record them on a blank twin, and copy them over
        # only once training has succeeded.
        features = type(self)()
        X, image_shape, input_ndim = self._validate_images(X, record_on=features)
        state = fit_model(
            X,
            image_shape,
            input_ndim,
            self.get_params(deep=False),
            n_features_in=features.n_features_in_,
            feature_names_in=getattr(features, "feature_names_in_", None),
            callback=callback,
        )
        # Set everything at the end: an interrupted fit leaves a previously
        # fitted estimator as it was and an unfitted one unfitted.
        self._set_fitted(state)
        return self

    def _embeddings(self, X):
        """Embeddings of validated 2-D ``X``, one inference batch at a time: ``(start, z)`` pairs."""
        return embeddings_in_batches(
            self.autoencoder_, X, self.image_shape_, self.input_mean_, self.input_scale_, self.precision
        )

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
        images = decode_in_batches(self.autoencoder_, Z, self.image_shape_)
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

    def save(self, path, *, overwrite=False):
        """Save the fitted model to the folder ``path`` in a format that runs no code.

        Parameters are stored as JSON and weights and arrays as plain tensors
        read back with ``torch.load(weights_only=True)``; see
        :func:`skdcec.load`. The folder is written under a temporary name and
        renamed when complete, so an error or an interruption leaves nothing
        behind. ``memory`` is stored as None (a cache location belongs to the
        machine that fitted the model), ``device`` as a string and a
        ``random_state`` that is not an int as None.

        Parameters
        ----------
        path : str or os.PathLike
            Folder to create. Its parent folder must exist.
        overwrite : bool, default=False
            Whether to replace an existing ``path``. Only an empty folder or a
            model folder is replaced, and only once the new folder is
            complete.

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
        check_is_fitted(self)
        attributes, tensors = self._fitted_state().to_plain()
        write_model(
            path,
            params=storable_params(self.get_params(deep=False)),
            attributes=attributes,
            tensors=tensors,
            overwrite=overwrite,
        )
        return self

    @property
    def _n_features_out(self):
        return self.embedding_dim

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
