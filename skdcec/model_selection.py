"""Choosing the number of clusters: fit every k on one pretraining, score each in a shared space."""

import contextlib
import tempfile
import time
import warnings

import numpy as np
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.pipeline import Pipeline

from skdcec.metrics import clustering_scores

__all__ = ["NClustersSelection", "select_n_clusters", "shared_space"]

# Dimensions of the PCA of the clusterer's input in which every k is scored alike.
SHARED_PCA_COMPONENTS = 50
# Rows the shared PCA is fitted on; all rows are projected.
SHARED_PCA_SAMPLE = 2000
# Rows projected at a time, so that uint8 images are never all converted to floats at once.
PROJECTION_CHUNK = 1024
CRITERIA = ("silhouette_embedding", "silhouette_shared")


class NClustersSelection:
    """The clusterings of one collection for several numbers of clusters, and their scores.

    Returned by :func:`select_n_clusters`.

    Attributes
    ----------
    n_clusters : list of int
        The values of k, in increasing order.
    estimators : list of estimator
        The fitted estimator of every k (pipelines share their fitted front
        steps).
    embeddings : list of ndarray of shape (n_samples, embedding_dim)
        ``transform(X)`` of every k's estimator.
    probabilities : list of ndarray of shape (n_samples, k)
        ``predict_proba(X)`` of every k's estimator.
    scores : list of dict
        Per k: ``n_clusters``, ``silhouette_embedding`` and
        ``calinski_harabasz_embedding`` (in that k's own embedding, inflated
        by the clustering loss), ``silhouette_shared`` and
        ``calinski_harabasz_shared`` (in the shared space, the same for
        every k), ``n_iter`` and ``fit_seconds``. A score is None where it is
        undefined (fewer than two clusters found).
    shared_points : ndarray of shape (n_samples, n_components)
        The shared space: a PCA of the clusterer's input (pixels in
        ``[0, 1]``, or a front end's features).
    best_index : int
        Position of the best k under ``criterion``; ties go to the smaller k.
    best_n_clusters : int
        The best k.
    criterion : str
        The score that chose it.
    front_seconds : float
        Time spent fitting and applying a pipeline's front steps, once.

    Examples
    --------
    See :func:`select_n_clusters` for a search; its result holds every k:

    >>> import numpy as np
    >>> from skdcec.model_selection import NClustersSelection
    >>> scores = [{"n_clusters": k, "silhouette_embedding": s} for k, s in [(2, 0.4), (3, 0.6)]]
    >>> selection = NClustersSelection([2, 3], [None, None], [None, None], [None, None], scores,
    ...                                np.zeros((5, 2)), "silhouette_embedding", 0.0)
    >>> selection.best_n_clusters
    3
    """

    def __init__(
        self,
        n_clusters,
        estimators,
        embeddings,
        probabilities,
        scores,
        shared_points,
        criterion,
        front_seconds,
    ):
        self.n_clusters = n_clusters
        self.estimators = estimators
        self.embeddings = embeddings
        self.probabilities = probabilities
        self.scores = scores
        self.shared_points = shared_points
        self.criterion = criterion
        self.front_seconds = front_seconds
        self.best_index = _best(scores, criterion)
        self.best_n_clusters = n_clusters[self.best_index]


def _best(scores, criterion):
    best = 0
    for index, record in enumerate(scores):
        value, best_value = record[criterion], scores[best][criterion]
        if value is not None and (best_value is None or value > best_value):
            best = index
    return best


def shared_space(X, *, random_state=0):
    """Project rows on the principal components of a sample of them: a space every clustering shares.

    Parameters
    ----------
    X : array-like of shape (n_samples, ...)
        Images (uint8, scaled to ``[0, 1]``) or feature rows (as they are).
    random_state : int, default=0
        Seeds the choice of the rows the PCA is fitted on.

    Returns
    -------
    points : ndarray of shape (n_samples, n_components)
        float64 coordinates, at most ``SHARED_PCA_COMPONENTS`` of them.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skdcec.model_selection import shared_space
    >>> shared_space(load_digits().data).shape
    (1797, 50)
    """
    X = np.asarray(X)
    n_samples = len(X)
    flat = X.reshape(n_samples, -1)
    scale = 255.0 if flat.dtype == np.uint8 else 1.0
    rng = np.random.default_rng(random_state)
    sample = np.sort(rng.choice(n_samples, size=min(n_samples, SHARED_PCA_SAMPLE), replace=False))
    n_components = min(SHARED_PCA_COMPONENTS, len(sample), flat.shape[1])
    pca = PCA(n_components=n_components, random_state=0).fit(flat[sample].astype(np.float32) / scale)
    points = np.concatenate(
        [
            pca.transform(flat[start : start + PROJECTION_CHUNK].astype(np.float32) / scale)
            for start in range(0, n_samples, PROJECTION_CHUNK)
        ]
    )
    return points.astype(np.float64)


def select_n_clusters(estimator, X, n_clusters, *, criterion="silhouette_embedding", callback=None):
    """Fit ``estimator`` for every number of clusters in ``n_clusters`` and score each alike.

    The work that does not depend on k is done once: a pipeline's front
    steps (such as :class:`~skdcec.PretrainedFeatures`) are fitted and
    applied once, and the autoencoder is pretrained once and reused from a
    throwaway ``memory`` cache when the clusterer has none (this needs an int
    ``random_state``: with None every fit draws its own seed and pretrains
    anew). Every clustering is then scored in its own embedding and in one
    shared space, a PCA of the clusterer's input.

    Parameters
    ----------
    estimator : DeepConvEmbeddingClustering or Pipeline
        The clusterer, or a pipeline that ends with it; it is cloned, never
        fitted itself.
    X : array-like
        The collection, as ``estimator.fit`` takes it.
    n_clusters : iterable of int
        The values of k to fit.
    criterion : {"silhouette_embedding", "silhouette_shared"}, default="silhouette_embedding"
        The score that picks the best k. In its own embedding every
        clustering looks compact (the clustering loss compacts the space it
        is measured in), so the shared space is the fairer comparison
        between values of k, but it has the bias of a PCA of its input.
    callback : callable, default=None
        Called as ``callback(k, stage, record)``: with every progress record
        of ``fit`` (``stage`` ``"pretrain"`` or ``"clustering"``, see
        :meth:`DeepConvEmbeddingClustering.fit`) and, once k is fitted and
        scored, with ``stage="scored"`` and its record of ``scores``.

    Returns
    -------
    NClustersSelection
        Every k's fitted estimator, embedding, probabilities and scores, and
        the best k.

    Notes
    -----
    With several values of k, a warning raised while fitting one of them
    is raised again with ``"k=<k>: "`` in front of its message.

    Examples
    --------
    >>> import warnings
    >>> from sklearn.datasets import load_digits
    >>> from skdcec import DeepConvEmbeddingClustering
    >>> from skdcec.model_selection import select_n_clusters
    >>> X = load_digits().images[:150]
    >>> dcec = DeepConvEmbeddingClustering(pretrain_epochs=3, max_iter=20, random_state=0)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     selection = select_n_clusters(dcec, X, [3, 4, 5])
    >>> selection.n_clusters
    [3, 4, 5]
    >>> selection.best_n_clusters in (3, 4, 5)
    True
    >>> sorted(selection.scores[0])[:3]
    ['calinski_harabasz_embedding', 'calinski_harabasz_shared', 'fit_seconds']
    """
    ks = sorted({int(k) for k in n_clusters})
    if not ks:
        raise ValueError("n_clusters is empty; pass the numbers of clusters to try, such as [3, 5, 7].")
    if criterion not in CRITERIA:
        raise ValueError(f"criterion={criterion!r} is not one of {list(CRITERIA)}.")
    started = time.perf_counter()
    if isinstance(estimator, Pipeline):
        front = clone(Pipeline(estimator.steps[:-1])).fit(X)
        clusterer_input = front.transform(X)
        name, clusterer = estimator.steps[-1]
    else:
        front, clusterer_input, name, clusterer = None, X, None, estimator
    front_seconds = time.perf_counter() - started if front is not None else 0.0
    shared_points = shared_space(clusterer_input)
    estimators, embeddings, probabilities, scores = [], [], [], []
    with _pretraining_cache(len(ks) > 1 and clusterer.get_params()["memory"] is None) as memory:
        for k in ks:
            fitted = clone(clusterer).set_params(n_clusters=k)
            if memory is not None:
                fitted.set_params(memory=memory)
            progress = None if callback is None else _for_k(callback, k)
            started = time.perf_counter()
            with _prefixed_warnings(f"k={k}: " if len(ks) > 1 else None):
                fitted.fit(clusterer_input, callback=progress)
            fit_seconds = time.perf_counter() - started
            if memory is not None:
                fitted.set_params(memory=None)
            embedding = fitted.transform(clusterer_input)
            proba = fitted.predict_proba(clusterer_input)
            labels = proba.argmax(axis=1)
            silhouette, calinski_harabasz = clustering_scores(embedding, labels)
            shared_silhouette, shared_calinski_harabasz = clustering_scores(shared_points, labels)
            record = {
                "n_clusters": k,
                "silhouette_embedding": silhouette,
                "calinski_harabasz_embedding": calinski_harabasz,
                "silhouette_shared": shared_silhouette,
                "calinski_harabasz_shared": shared_calinski_harabasz,
                "n_iter": fitted.n_iter_,
                "fit_seconds": round(fit_seconds, 3),
            }
            if front is not None:
                fitted = Pipeline([*front.steps, (name, fitted)])
            estimators.append(fitted)
            embeddings.append(embedding)
            probabilities.append(proba)
            scores.append(record)
            if callback is not None:
                callback(k, "scored", record)
    return NClustersSelection(
        ks, estimators, embeddings, probabilities, scores, shared_points, criterion, front_seconds
    )


def _for_k(callback, k):
    def progress(stage, record):
        callback(k, stage, record)

    return progress


@contextlib.contextmanager
def _pretraining_cache(needed):
    """A throwaway joblib cache folder, so that several values of k pretrain once."""
    if not needed:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="skdcec-pretraining-") as folder:
        yield folder


@contextlib.contextmanager
def _prefixed_warnings(prefix):
    """Raise the warnings of the block again with ``prefix`` in front of their message."""
    if prefix is None:
        yield
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        warnings.warn_explicit(
            prefix + str(warning.message), warning.category, warning.filename, warning.lineno
        )
