"""Scores for clusterings: accuracy under the best label matching, embedding-space scorers."""

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import calinski_harabasz_score, confusion_matrix, silhouette_score
from sklearn.utils.validation import check_consistent_length, column_or_1d

# The silhouette is quadratic in the number of points: above this many it is
# estimated on a fixed random sample of them.
SILHOUETTE_SAMPLE_SIZE = 10_000


def clustering_scores(points, labels):
    """Silhouette and Calinski-Harabasz index of ``labels`` at ``points``.

    Both are undefined when fewer than two clusters, or as many clusters as
    points, are present; both are then None. Above
    ``SILHOUETTE_SAMPLE_SIZE`` points the silhouette is estimated on a fixed
    random sample of that size.

    Parameters
    ----------
    points : array-like of shape (n_samples, n_features)
        Coordinates of the points, such as an embedding.
    labels : array-like of shape (n_samples,)
        Cluster of every point.

    Returns
    -------
    silhouette : float or None
        Mean silhouette coefficient in ``[-1, 1]``, higher is better.
    calinski_harabasz : float or None
        Ratio of between- to within-cluster dispersion, higher is better.

    Examples
    --------
    >>> from skdcec.metrics import clustering_scores
    >>> silhouette, calinski_harabasz = clustering_scores([[0.0], [0.1], [5.0], [5.1]], [0, 0, 1, 1])
    >>> round(silhouette, 2)
    0.98
    >>> clustering_scores([[0.0], [1.0]], [0, 0])
    (None, None)
    """
    labels = np.asarray(labels)
    n_labels = len(np.unique(labels))
    if n_labels < 2 or n_labels >= len(labels):
        return None, None
    sample_size = SILHOUETTE_SAMPLE_SIZE if len(labels) > SILHOUETTE_SAMPLE_SIZE else None
    silhouette = silhouette_score(points, labels, sample_size=sample_size, random_state=0)
    return float(silhouette), float(calinski_harabasz_score(points, labels))


def cluster_accuracy(labels_true, labels_pred):
    """Accuracy of a clustering under the best one-to-one matching of labels.

    The matching that maximises agreement is found with the Hungarian method
    (:func:`scipy.optimize.linear_sum_assignment`); clusters left without a
    partner count as wrong. This is the ACC of the DEC and DCEC papers.

    Parameters
    ----------
    labels_true : array-like of shape (n_samples,)
        Ground-truth classes.
    labels_pred : array-like of shape (n_samples,)
        Cluster labels to evaluate.

    Returns
    -------
    accuracy : float
        Fraction of samples whose cluster maps to their class, in ``[0, 1]``.

    Examples
    --------
    >>> from skdcec.metrics import cluster_accuracy
    >>> cluster_accuracy([0, 0, 1, 1, 2], [1, 1, 0, 0, 0])
    0.8
    """
    labels_true = column_or_1d(labels_true)
    labels_pred = column_or_1d(labels_pred)
    check_consistent_length(labels_true, labels_pred)
    if labels_true.size == 0:
        raise ValueError("labels_true and labels_pred are empty; pass at least one sample.")
    _, true_codes = np.unique(labels_true, return_inverse=True)
    _, pred_codes = np.unique(labels_pred, return_inverse=True)
    contingency = confusion_matrix(pred_codes, true_codes)
    rows, columns = linear_sum_assignment(contingency, maximize=True)
    return float(contingency[rows, columns].sum() / labels_true.size)


def embedding_silhouette_score(estimator, X, y=None):
    """Scorer: silhouette of ``estimator``'s predictions in its own embedding.

    Usable as ``scoring=`` in :class:`~sklearn.model_selection.GridSearchCV`.
    Equal to ``estimator.score(X)``. Inflated by the clustering loss, which
    compacts the embedding it is measured in.

    Parameters
    ----------
    estimator : DeepConvEmbeddingClustering
        A fitted estimator.
    X : array-like
        Images laid out as in ``fit``.
    y : Ignored
        Not used, present for API consistency.

    Returns
    -------
    score : float
        Mean silhouette coefficient in ``[-1, 1]``; 0 when undefined.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skdcec import DeepConvEmbeddingClustering
    >>> from skdcec.metrics import embedding_silhouette_score
    >>> X = load_digits().data[:100]
    >>> est = DeepConvEmbeddingClustering(3, pretrain_epochs=2, max_iter=10,
    ...                                   random_state=0).fit(X)
    >>> -1 <= embedding_silhouette_score(est, X) <= 1
    True
    """
    return estimator.score(X)


def embedding_calinski_harabasz_score(estimator, X, y=None):
    """Scorer: Calinski-Harabasz index of the predictions in the embedding.

    Usable as ``scoring=`` in :class:`~sklearn.model_selection.GridSearchCV`.
    Unbounded, higher is better; 0 when fewer than two clusters, or as many
    clusters as samples, are predicted. Inflated like the silhouette.

    Parameters
    ----------
    estimator : DeepConvEmbeddingClustering
        A fitted estimator.
    X : array-like
        Images laid out as in ``fit``.
    y : Ignored
        Not used, present for API consistency.

    Returns
    -------
    score : float
        Ratio of between- to within-cluster dispersion.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skdcec import DeepConvEmbeddingClustering
    >>> from skdcec.metrics import embedding_calinski_harabasz_score
    >>> X = load_digits().data[:100]
    >>> est = DeepConvEmbeddingClustering(3, pretrain_epochs=2, max_iter=10,
    ...                                   random_state=0).fit(X)
    >>> embedding_calinski_harabasz_score(est, X) >= 0
    True
    """
    _, calinski_harabasz = clustering_scores(estimator.transform(X), estimator.predict(X))
    return 0.0 if calinski_harabasz is None else calinski_harabasz
