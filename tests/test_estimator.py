"""The estimator: shapes, the full API, scikit-learn integration, reproducibility, failure."""

import pickle
import random
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skdcec import DeepConvEmbeddingClustering


def _fit(X, n_clusters=3, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return DeepConvEmbeddingClustering(n_clusters, random_state=0, **params).fit(X)


@pytest.mark.parametrize(
    "shape, image_shape, expected",
    [
        ((30, 64), None, (8, 8, 1)),  # perfect square: square grayscale
        ((30, 17), None, (1, 17, 1)),  # anything else: a 1 x n strip
        ((30, 37 * 53), (37, 53), (37, 53, 1)),  # non-square, odd
        ((30, 12 * 10 * 3), (12, 10, 3), (12, 10, 3)),  # flattened RGB
        ((30, 8, 8), None, (8, 8, 1)),  # 3-D: grayscale images
        ((30, 1, 9), None, (1, 9, 1)),  # 3-D strip
        ((30, 12, 10, 3), None, (12, 10, 3)),  # 4-D: channels-last colour
    ],
)
def test_any_image_shape(shape, image_shape, expected, quick_params):
    """2-D, 3-D and 4-D inputs of any size fit, and decode back in the input's layout."""
    X = np.random.default_rng(0).uniform(size=shape)
    est = _fit(X, image_shape=image_shape, **quick_params)
    assert est.image_shape_ == expected
    assert est.labels_.shape == (30,)
    assert est.n_features_in_ == int(np.prod(shape[1:]))
    prototypes = est.inverse_transform(est.cluster_centers_)
    assert prototypes.shape == (3, *shape[1:])
    assert prototypes.dtype == np.float64


def test_uint8_images_decode_to_uint8_in_their_layout(rgb_images, quick_params):
    """uint8 RGB collections are mapped to [0, 1] and decoded back to uint8 images."""
    est = _fit(rgb_images, **quick_params)
    np.testing.assert_array_equal(est.input_mean_, 0.0)
    np.testing.assert_array_equal(est.input_scale_, 255.0)
    prototypes = est.inverse_transform(est.cluster_centers_)
    assert prototypes.dtype == np.uint8 and prototypes.shape == (3, 12, 10, 3)
    reconstruction = est.inverse_transform(est.transform(rgb_images))
    assert reconstruction.shape == rgb_images.shape


def test_uint8_is_not_copied_whole_to_float(rgb_images, quick_params, monkeypatch):
    """A uint8 collection reaches the model batch by batch, never as one float array."""
    from skdcec import _data

    taken = []
    original = _data.ImageBatches.take

    def spy(self, indices):
        taken.append(len(indices))
        return original(self, indices)

    monkeypatch.setattr(_data.ImageBatches, "take", spy)
    params = dict(quick_params, batch_size=8)
    est = _fit(rgb_images, **params)
    assert max(taken) == 8
    assert est.labels_.shape == (24,)


@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e6])
def test_any_scale_trains_the_same(digits, quick_params, scale):
    """Float input is standardised per channel: scaling X does not change the clustering."""
    X = digits[0][:300]
    reference = _fit(X, n_clusters=5, **quick_params).labels_
    scaled = _fit(X * scale + 3 * scale, n_clusters=5, **quick_params).labels_
    assert adjusted_rand_score(reference, scaled) > 0.95


def test_api_outputs(digits, quick_params):
    """predict, predict_proba, transform, score and feature names behave as documented."""
    X = digits[0][:200]
    est = _fit(X, n_clusters=4, **quick_params)
    proba = est.predict_proba(X)
    assert proba.shape == (200, 4) and (proba >= 0).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(proba.argmax(axis=1), est.predict(X))
    np.testing.assert_array_equal(est.predict(X), est.labels_)
    np.testing.assert_array_equal(est.fit_predict(X), est.labels_)
    embedding = est.transform(X)
    assert embedding.shape == (200, 10) and embedding.dtype == np.float64
    assert est.transform(X.astype(np.float32)).dtype == np.float32
    assert list(est.get_feature_names_out()) == [f"deepconvembeddingclustering{i}" for i in range(10)]
    assert -1.0 <= est.score(X) <= 1.0
    assert set(est.history_) == {"pretrain", "clustering"}
    assert len(est.history_["pretrain"]) == quick_params["pretrain_epochs"]
    assert est.history_["clustering"][-1]["iteration"] == est.n_iter_
    assert est.device_ == torch.device("cpu")


def test_score_is_defined_for_a_single_cluster(digits, quick_params):
    """With one cluster the silhouette is undefined; score reports 0 instead of failing."""
    est = _fit(digits[0][:50], n_clusters=1, **quick_params)
    assert est.score(digits[0][:50]) == 0.0


def test_set_output_pandas(digits, quick_params):
    """transform honours set_output(transform='pandas') with the embedding's column names."""
    pd = pytest.importorskip("pandas")
    est = _fit(digits[0][:100], **quick_params).set_output(transform="pandas")
    frame = est.transform(digits[0][:100])
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == list(est.get_feature_names_out())


def test_grid_search_over_n_clusters_in_a_pipeline(digits, quick_params):
    """GridSearchCV picks n_clusters with the default score, inside a Pipeline."""
    X = digits[0][:240]
    pipe = make_pipeline(FunctionTransformer(), DeepConvEmbeddingClustering(random_state=0, **quick_params))
    search = GridSearchCV(pipe, {"deepconvembeddingclustering__n_clusters": [2, 4]}, cv=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X)
    assert search.best_params_["deepconvembeddingclustering__n_clusters"] in (2, 4)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.predict(X).shape == (240,)


def test_clone_and_pickle_round_trip(digits, quick_params):
    """clone gives an unfitted twin; a pickled model predicts identically."""
    X = digits[0][:150]
    est = _fit(X, **quick_params)
    twin = clone(est)
    assert not hasattr(twin, "labels_") and twin.get_params() == est.get_params()
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.predict(X), est.predict(X))
    np.testing.assert_array_equal(restored.transform(X), est.transform(X))
    assert isinstance(pickle.dumps(est), bytes)


def test_same_seed_same_result_and_global_rngs_untouched(digits, quick_params):
    """Same random_state gives identical labels and embeddings; global RNG states are unchanged."""
    X = digits[0][:200]
    torch_state = torch.get_rng_state()
    numpy_state = np.random.get_state()
    python_state = random.getstate()
    first = _fit(X, n_clusters=5, **quick_params)
    second = _fit(X, n_clusters=5, **quick_params)
    DeepConvEmbeddingClustering(2, random_state=None, **quick_params).fit(X[:50])
    assert torch.equal(torch.get_rng_state(), torch_state)
    new_numpy_state = np.random.get_state()
    assert all(np.array_equal(a, b) for a, b in zip(numpy_state, new_numpy_state))
    assert random.getstate() == python_state
    np.testing.assert_array_equal(first.labels_, second.labels_)
    np.testing.assert_array_equal(first.transform(X), second.transform(X))


def test_verbose_zero_prints_nothing_and_verbose_one_reports(digits, quick_params, capsys):
    """verbose=0 is silent; verbose=1 reports pretraining and clustering progress on stderr."""
    X = digits[0][:100]
    _fit(X, **quick_params)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    _fit(X, verbose=1, **quick_params)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "pretrain epoch 10/10" in captured.err and "iteration 0" in captured.err


def test_max_iter_reached_warns(digits, quick_params):
    """Stopping at max_iter without meeting tol is a ConvergenceWarning."""
    params = dict(quick_params, max_iter=5, tol=0.0)
    with pytest.warns(ConvergenceWarning, match="max_iter=5"):
        DeepConvEmbeddingClustering(3, random_state=0, **params).fit(digits[0][:100])


def test_empty_clusters_warn_with_sizes(quick_params):
    """Duplicate images leave clusters empty: the warning names the sizes."""
    X = np.repeat(np.random.default_rng(0).uniform(size=(2, 16)), 10, axis=0)
    with pytest.warns(ConvergenceWarning, match=r"sizes \["):
        DeepConvEmbeddingClustering(4, random_state=0, **quick_params).fit(X)


def test_divergence_is_an_error_naming_learning_rate(digits, quick_params):
    """A learning rate that makes the loss NaN stops fit with an error, not garbage labels."""
    est = DeepConvEmbeddingClustering(3, random_state=0, **dict(quick_params, learning_rate=1e12))
    with pytest.raises(FloatingPointError, match="learning_rate"):
        est.fit(digits[0][:100])
    assert not hasattr(est, "labels_")


def test_failed_fit_leaves_a_fitted_estimator_as_it_was(digits, quick_params):
    """An exception during fit does not half-overwrite a previously fitted model."""
    X = digits[0][:100]
    est = _fit(X, **quick_params)
    labels, centers = est.labels_.copy(), est.cluster_centers_.copy()
    est.set_params(learning_rate=1e12)
    with pytest.raises(FloatingPointError):
        est.fit(X)
    np.testing.assert_array_equal(est.labels_, labels)
    np.testing.assert_array_equal(est.cluster_centers_, centers)


@pytest.mark.parametrize(
    "X, params, message",
    [
        (np.zeros((5, 4)), dict(n_clusters=8), "n_samples=5 should be >= n_clusters=8"),
        (np.zeros((10, 4)), dict(image_shape=(3, 3)), "image_shape=.* n_features=4"),
        (np.zeros((10, 4)), dict(image_shape=(2, 2, 2, 2)), "must be \\(height, width\\)"),
        (np.zeros((10, 4, 4)), dict(image_shape=(2, 8)), "does not match"),
        (np.full((10, 4), np.nan), {}, "NaN"),
        (np.full((10, 4), np.inf), {}, "infinity"),
        (np.zeros(10), {}, "Expected 2D array"),
        (np.zeros((10, 2, 2, 2, 2)), {}, "X has 5 dimensions"),
        (np.zeros((10, 4)), dict(filters=()), "filters=\\(\\) must be"),
        (np.zeros((10, 4)), dict(device="tpu"), "device='tpu'"),
    ],
)
def test_user_errors_are_clear_value_errors(X, params, message, quick_params):
    """Bad input raises ValueError saying what is wrong and what to do."""
    params = {**quick_params, "n_clusters": 2, **params}
    with pytest.raises(ValueError, match=message):
        DeepConvEmbeddingClustering(**params).fit(X)


def test_predict_checks_the_image_shape(quick_params):
    """Images of another shape with the same pixel count are refused at predict time."""
    X = np.random.default_rng(0).uniform(size=(20, 4, 6))
    est = _fit(X, n_clusters=2, **quick_params)
    with pytest.raises(ValueError, match="resize the images"):
        est.predict(X.reshape(20, 6, 4))
    with pytest.raises(ValueError, match="features"):
        est.predict(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="embedding_dim=10"):
        est.inverse_transform(np.zeros((2, 3)))


def test_unavailable_cuda_is_a_clear_error(quick_params):
    """Asking for CUDA on a machine without it says so instead of failing inside torch."""
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    est = DeepConvEmbeddingClustering(2, **dict(quick_params, device="cuda"))
    with pytest.raises(ValueError, match="CUDA is not available"):
        est.fit(np.zeros((10, 4)))


def test_parameter_constraints_cover_every_parameter():
    """Every __init__ parameter is declared in _parameter_constraints."""
    params = DeepConvEmbeddingClustering().get_params()
    assert set(DeepConvEmbeddingClustering._parameter_constraints) == set(params)


def test_memory_pretrains_once_per_fold_in_a_search(digits, quick_params, tmp_path, monkeypatch):
    """With memory=, a search over n_clusters pretrains once per fold (plus the refit)."""
    from skdcec import _estimator

    calls = []
    original = _estimator.pretrain

    def counting_pretrain(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(_estimator, "pretrain", counting_pretrain)
    X = digits[0][:120]
    search = GridSearchCV(
        DeepConvEmbeddingClustering(random_state=0, memory=str(tmp_path), **quick_params),
        {"n_clusters": [2, 3, 4]},
        cv=2,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X)
    # Two folds and the refit on all data: three distinct training sets.
    assert len(calls) == 3
    # The cached pretraining gives the same model as pretraining afresh.
    fresh = _fit(X, n_clusters=3, **quick_params)
    cached = _fit(X, n_clusters=3, memory=str(tmp_path), **quick_params)
    np.testing.assert_array_equal(fresh.labels_, cached.labels_)
    np.testing.assert_allclose(fresh.transform(X), cached.transform(X), rtol=1e-6)


def test_bfloat16_precision_trains_on_cpu(digits, quick_params):
    """precision='bfloat16' runs the autocast path on the CPU and still clusters."""
    X = digits[0][:150]
    est = _fit(X, n_clusters=3, precision="bfloat16", **quick_params)
    assert est.transform(X).dtype == np.float64
    np.testing.assert_array_equal(est.predict(X), est.labels_)


def test_augment_trains_on_transformed_images_but_never_predicts_on_them(rgb_images, quick_params, monkeypatch):
    """augment=True transforms training batches only; results stay reproducible per seed."""
    from skdcec import _training

    calls = []
    original = _training.augment_batch

    def spy(images, augmentations, generator):
        calls.append(augmentations)
        return original(images, augmentations, generator)

    monkeypatch.setattr(_training, "augment_batch", spy)
    first = _fit(rgb_images, augment=True, **quick_params)
    assert calls and all(a == {"shift", "rotate", "flip", "crop", "jitter"} for a in calls)
    n_training_calls = len(calls)
    np.testing.assert_array_equal(first.predict(rgb_images), first.labels_)
    assert len(calls) == n_training_calls, "predict must not augment"
    second = _fit(rgb_images, augment=True, **quick_params)
    np.testing.assert_array_equal(first.labels_, second.labels_)


def test_augment_selection_is_validated(quick_params):
    """Unknown augmentation names are a ValueError that lists the valid ones."""
    est = DeepConvEmbeddingClustering(2, augment=("shift", "blur"), **quick_params)
    with pytest.raises(ValueError, match="unknown augmentations \\['blur'\\]"):
        est.fit(np.zeros((10, 16)))


def test_fit_and_predict_cap_torch_threads_and_restore_them(digits, quick_params, monkeypatch):
    """Training and inference run on at most the available cores; the user's setting survives."""
    from skdcec import _device, _estimator

    seen = []

    def recording_embed(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return embed(*args, **kwargs)

    embed = _estimator.embed
    monkeypatch.setattr(_estimator, "embed", recording_embed)
    monkeypatch.setattr(_device.joblib, "cpu_count", lambda only_physical_cores=False: 1)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        est = DeepConvEmbeddingClustering(3, random_state=0, **quick_params).fit(digits[0][:60])
        assert torch.get_num_threads() == 3
        est.predict(digits[0][:10])
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(previous)
    assert seen and set(seen) == {1}
