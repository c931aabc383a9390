"""Choosing k: every k fitted on one pretraining and one feature extraction, scored in a shared space."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import Pipeline

from skdcec import DeepConvEmbeddingClustering, PretrainedFeatures
from skdcec.model_selection import select_n_clusters, shared_space

QUICK = {"pretrain_epochs": 3, "max_iter": 20, "update_interval": 10, "n_init": 2, "device": "cpu"}

pytestmark = pytest.mark.usefixtures("one_thread")


def _select(estimator, X, ks, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return select_n_clusters(estimator, X, ks, **kwargs)


def test_every_k_is_fitted_on_one_pretraining_and_scored_alike(digits, pretrainings):
    """Three values of k pretrain once; each k's model, scores and outputs are its own and consistent."""
    X = digits[0][:150].reshape(-1, 8, 8)
    estimator = DeepConvEmbeddingClustering(random_state=0, **QUICK)
    selection = _select(estimator, X, [5, 3, 4])
    assert len(pretrainings) == 1
    assert selection.n_clusters == [3, 4, 5]
    assert not hasattr(estimator, "labels_")
    for k, fitted, embedding, proba, record in zip(
        selection.n_clusters,
        selection.estimators,
        selection.embeddings,
        selection.probabilities,
        selection.scores,
    ):
        assert fitted.n_clusters == k and record["n_clusters"] == k
        assert fitted.get_params()["memory"] is None
        np.testing.assert_allclose(embedding, fitted.transform(X), rtol=1e-6)
        np.testing.assert_allclose(proba, fitted.predict_proba(X), rtol=1e-6)
        assert proba.shape == (150, k)
        assert record["n_iter"] == fitted.n_iter_ and record["fit_seconds"] > 0
        assert -1 <= record["silhouette_shared"] <= 1
    silhouettes = [record["silhouette_embedding"] for record in selection.scores]
    assert selection.best_n_clusters == selection.n_clusters[int(np.argmax(silhouettes))]
    np.testing.assert_allclose(selection.shared_points, shared_space(X))


def test_the_shared_criterion_picks_by_the_shared_space(digits):
    """criterion='silhouette_shared' picks the k whose clusters are best in the space all of them share."""
    X = digits[0][:150].reshape(-1, 8, 8)
    selection = _select(
        DeepConvEmbeddingClustering(random_state=0, **QUICK), X, [2, 3, 6], criterion="silhouette_shared"
    )
    shared = [record["silhouette_shared"] for record in selection.scores]
    assert selection.best_index == int(np.argmax(shared))
    assert selection.criterion == "silhouette_shared"


def test_a_pipeline_computes_its_features_once(rgb_images, pretrainings):
    """The front steps of a pipeline are fitted and applied once for all k; the results are pipelines."""
    calls = []

    class CountingMean(torch.nn.Module):
        def forward(self, x):
            calls.append(len(x))
            return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)

    pipeline = Pipeline(
        [
            ("features", PretrainedFeatures(CountingMean(), input_size=8, batch_size=8)),
            ("dcec", DeepConvEmbeddingClustering(random_state=0, **QUICK)),
        ]
    )
    selection = _select(pipeline, rgb_images, [2, 3])
    # fit probes the feature map with one image; then one pass over the 24
    # images in fixed batches of 8 serves both k.
    assert calls == [1, 8, 8, 8]
    assert len(pretrainings) == 1
    assert all(isinstance(fitted, Pipeline) for fitted in selection.estimators)
    first, second = selection.estimators
    assert first[0] is second[0]
    assert selection.front_seconds > 0
    np.testing.assert_array_equal(second.predict(rgb_images), selection.probabilities[1].argmax(1))
    assert not hasattr(pipeline[-1], "labels_")


def test_the_callback_sees_every_stage_of_every_k(digits):
    """callback(k, stage, record): pretraining once, the joint phase and the scores of each k."""
    seen = []
    X = digits[0][:100].reshape(-1, 8, 8)
    _select(
        DeepConvEmbeddingClustering(random_state=0, **QUICK),
        X,
        [2, 3],
        callback=lambda k, stage, record: seen.append((k, stage, record)),
    )
    stages = [(k, stage) for k, stage, _ in seen]
    assert stages.count((2, "pretrain")) == 3 and (3, "pretrain") not in stages
    assert (2, "clustering") in stages and (3, "clustering") in stages
    assert [k for k, stage, _ in seen if stage == "scored"] == [2, 3]
    pretrain = next(record for _, stage, record in seen if stage == "pretrain")
    clustering = next(record for _, stage, record in seen if stage == "clustering")
    assert pretrain["n_epochs"] == 3 and clustering["max_iter"] == 20 and clustering["pretrain_epochs"] == 3


def test_warnings_of_several_k_name_their_k(digits):
    """With several k, each fit's warnings come out again prefixed with its k."""
    X = digits[0][:100].reshape(-1, 8, 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        select_n_clusters(DeepConvEmbeddingClustering(random_state=0, **QUICK), X, [2, 3])
    messages = [str(warning.message) for warning in caught if warning.category is ConvergenceWarning]
    assert any(message.startswith("k=2: Joint training reached max_iter") for message in messages)
    assert any(message.startswith("k=3: ") for message in messages)


def test_a_memory_of_the_users_is_kept(digits, tmp_path, pretrainings):
    """A clusterer with its own memory= keeps it, and a second search pretrains nothing."""
    X = digits[0][:100].reshape(-1, 8, 8)
    estimator = DeepConvEmbeddingClustering(random_state=0, memory=str(tmp_path), **QUICK)
    _select(estimator, X, [2, 3])
    selection = _select(estimator, X, [4])
    assert len(pretrainings) == 1
    assert selection.estimators[0].get_params()["memory"] == str(tmp_path)


@pytest.mark.parametrize(
    "ks, kwargs, message",
    [([], {}, "n_clusters is empty"), ([2], {"criterion": "davies"}, "criterion='davies'")],
)
def test_bad_arguments_are_clear_errors(digits, ks, kwargs, message):
    with pytest.raises(ValueError, match=message):
        select_n_clusters(DeepConvEmbeddingClustering(**QUICK), digits[0][:50], ks, **kwargs)


def test_the_shared_space_scales_pixels_and_keeps_features():
    """uint8 images are projected in [0, 1]; floats as they are; at most 50 components."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(60, 6, 6), dtype=np.uint8)
    points = shared_space(pixels)
    assert points.shape == (60, 36) and points.dtype == np.float64
    np.testing.assert_allclose(shared_space(pixels.astype(np.float64) / 255), points, atol=1e-5)
    assert shared_space(rng.normal(size=(80, 120))).shape == (80, 50)
