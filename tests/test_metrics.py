"""Cluster accuracy under Hungarian matching and the embedding-space scorers."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV

from skdcec import DeepConvEmbeddingClustering, metrics
from skdcec.metrics import (
    cluster_accuracy,
    clustering_scores,
    embedding_calinski_harabasz_score,
    embedding_silhouette_score,
)


def test_accuracy_is_invariant_to_relabelling():
    """Permuting cluster ids does not change the accuracy."""
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    pred = np.array([2, 2, 0, 0, 1, 1, 0])
    assert cluster_accuracy(y, pred) == pytest.approx(6 / 7)
    assert cluster_accuracy(y, (pred + 1) % 3) == pytest.approx(6 / 7)


def test_accuracy_with_more_clusters_than_classes():
    """Unmatched clusters count as errors; string classes work."""
    assert cluster_accuracy(["a", "a", "b", "b"], [0, 1, 2, 3]) == pytest.approx(0.5)


def test_accuracy_rejects_mismatched_lengths():
    """Label arrays of different lengths are an error."""
    with pytest.raises(ValueError):
        cluster_accuracy([0, 1], [0, 1, 1])


def test_scorers_drive_a_search(digits, quick_params):
    """Both scorers work as GridSearchCV scoring and agree with direct computation."""
    X = digits[0][:160]
    search = GridSearchCV(
        DeepConvEmbeddingClustering(random_state=0, **quick_params),
        {"n_clusters": [2, 3]},
        scoring={"silhouette": embedding_silhouette_score, "ch": embedding_calinski_harabasz_score},
        refit="silhouette",
        cv=2,
    )
    search.fit(X)
    assert np.isfinite(search.cv_results_["mean_test_ch"]).all()
    best = search.best_estimator_
    assert embedding_silhouette_score(best, X) == pytest.approx(best.score(X))
    assert embedding_calinski_harabasz_score(best, X) > 0


def test_clustering_scores_are_none_where_undefined():
    """One cluster, or one cluster per point, has no silhouette and no Calinski-Harabasz."""
    points = np.array([[0.0], [0.1], [5.0], [5.1]])
    assert clustering_scores(points, [0, 0, 0, 0]) == (None, None)
    assert clustering_scores(points, [0, 1, 2, 3]) == (None, None)
    silhouette, calinski_harabasz = clustering_scores(points, [0, 0, 1, 1])
    assert 0.9 < silhouette <= 1.0
    assert calinski_harabasz > 100


def test_clustering_scores_sample_the_silhouette_above_the_limit(monkeypatch):
    """Above SILHOUETTE_SAMPLE_SIZE points the silhouette is estimated on a fixed sample."""
    rng = np.random.default_rng(0)
    points = rng.normal(size=(60, 2))
    labels = np.arange(60) % 3
    exact, _ = clustering_scores(points, labels)
    monkeypatch.setattr(metrics, "SILHOUETTE_SAMPLE_SIZE", 20)
    sampled, _ = clustering_scores(points, labels)
    assert sampled != exact
    assert clustering_scores(points, labels)[0] == sampled  # the same fixed sample every time
