"""The estimator: shapes, the full API, scikit-learn integration, reproducibility, failure."""

import copy
import pickle
import random
import warnings

import numpy as np
import pytest
import torch
from scipy import sparse
from sklearn.base import clone
from sklearn.datasets import load_digits, make_blobs
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skdcec import DeepConvEmbeddingClustering
from skdcec._autoencoder import ConvAutoencoder, DenseAutoencoder
from skdcec._training import TrainingDivergedError


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


@pytest.mark.parametrize("scale, offset", [(1e-13, 0.0), (1e-6, 3e-6), (1.0, 3.0), (1e6, 3e6), (1.0, 1e9)])
def test_any_scale_trains_the_same(digits, quick_params, scale, offset):
    """Float input is standardised per channel: scaling or shifting X does not change the clustering."""
    X = digits[0][:300]
    reference = _fit(X, n_clusters=5, **quick_params).labels_
    scaled = _fit(X * scale + offset, n_clusters=5, **quick_params).labels_
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
        DeepConvEmbeddingClustering(3, random_state=0, **params).fit(digits[0][:100].reshape(-1, 8, 8))


def test_empty_clusters_warn_with_sizes(quick_params):
    """Duplicate images leave clusters empty: the warning names the sizes."""
    X = np.repeat(np.random.default_rng(0).uniform(size=(2, 16)), 10, axis=0)
    with pytest.warns(ConvergenceWarning, match=r"sizes \["):
        DeepConvEmbeddingClustering(4, random_state=0, **quick_params).fit(X)


def _attributes(est):
    """Every attribute of ``est``, arrays and network weights copied, to compare before and after."""
    state = {}
    for name, value in vars(est).items():
        if isinstance(value, torch.nn.Module):
            value = (id(value), {key: tensor.clone() for key, tensor in value.state_dict().items()})
        state[name] = copy.deepcopy(value)
    return state


def _assert_same_attributes(actual, expected):
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(actual[name], value, err_msg=name)
        elif isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
            assert actual[name][0] == value[0], name
            for key, tensor in value[1].items():
                assert torch.equal(actual[name][1][key], tensor), (name, key)
        else:
            assert actual[name] == value, name


def _raise_at(stage, count, error):
    """A progress callback that raises ``error`` at the ``count``-th record of ``stage``."""
    seen = []

    def report(record_stage, record):
        if record_stage == stage:
            seen.append(record)
            if len(seen) == count:
                raise error

    return report


FIT_FAULTS = {
    "Ctrl-C in pretraining": ({}, ("pretrain", 2, KeyboardInterrupt()), KeyboardInterrupt, None),
    "Ctrl-C in joint training": (
        {},
        ("clustering", 2, KeyboardInterrupt()),
        KeyboardInterrupt,
        None,
    ),
    "out of memory in joint training": (
        {},
        ("clustering", 1, MemoryError("out of memory")),
        MemoryError,
        "out of memory",
    ),
    "divergence": (dict(learning_rate=1e12), None, TrainingDivergedError, "Lower learning_rate"),
}


@pytest.mark.parametrize("fault", FIT_FAULTS)
def test_failed_fit_changes_nothing(fault, digits, quick_params, monkeypatch):
    """Ctrl-C, an error or divergence during fit leaves a fitted estimator exactly as it was, an unfitted one unfitted."""
    params, injection, error, message = FIT_FAULTS[fault]
    quick_params = dict(quick_params, pretrain_epochs=3)
    X = digits[0][:60]
    fitted = _fit(X, **quick_params)
    proba = fitted.predict_proba(X)
    unfitted = DeepConvEmbeddingClustering(3, random_state=0, **quick_params)
    # Other images, of another shape: any attribute set early would show.
    X_new = np.random.default_rng(0).uniform(size=(40, 6, 6))
    for est in (fitted, unfitted):
        callback = None if injection is None else _raise_at(*injection)
        est.set_params(n_clusters=4, **params)
        before = _attributes(est)
        with pytest.raises(error, match=message):
            est.fit(X_new, callback=callback)
        _assert_same_attributes(_attributes(est), before)
    assert not [name for name in vars(unfitted) if name.endswith("_")]
    with pytest.raises(NotFittedError):
        unfitted.predict(X)
    np.testing.assert_array_equal(fitted.predict_proba(X), proba)
    assert fitted.n_features_in_ == 64


def test_collapse_warns_with_sizes_and_keeps_the_last_healthy_labels(
    digits, quick_params, monkeypatch, capsys
):
    """Clusters emptying out mid-training warn with both sets of sizes; labels_ is the kept solution."""
    from skdcec import _fitting
    from skdcec._clustering import ClusteringLayer

    class CollapsingLayer(ClusteringLayer):
        """Real assignments at the first target update, everything in cluster 0 at the second."""

        n_updates = 0

        def log_assignment_of_all(self, z):
            log_q = super().log_assignment_of_all(z)
            self.n_updates += 1
            if self.n_updates == 1:
                return log_q
            logits = torch.full_like(log_q, -30.0)
            logits[:, 0] = 0.0
            return torch.log_softmax(logits, dim=1)

    monkeypatch.setattr(_fitting, "ClusteringLayer", CollapsingLayer)
    X = digits[0][:120]
    est = DeepConvEmbeddingClustering(3, random_state=0, **dict(quick_params, tol=0.0, verbose=1))
    with pytest.warns(ConvergenceWarning, match="emptied out") as caught:
        est.fit(X)
    message = str(caught[0].message)
    kept = np.bincount(est.labels_, minlength=3).tolist()
    assert "sizes [120, 0, 0]" in message and f"sizes {kept}" in message
    # The collapse shows at the second target update; the first one's weights come back.
    assert "stopped at iteration 10" in message and "the solution of iteration 0" in message
    # Both emptied clusters were first re-seeded inside the one that took every image.
    assert "after 2 relocation(s)" in message
    assert [r["cluster"] for r in est.history_["clustering"][-1]["relocations"]] == [1, 2]
    assert "cluster 1 was dying and took half of cluster 0 (120 images)" in capsys.readouterr().err
    assert est.n_iter_ == 10  # mini-batches run, past the solution kept
    assert "learning_rate" in message
    np.testing.assert_array_equal(est.predict(X), est.labels_)


@pytest.mark.slow
def test_compile_trains_the_eager_model(digits, quick_params):
    """compile=True (torch.compile, built here by the CPU's C++ compiler) learns what eager mode learns.

    On 8x8 images, the convolutional network: compiled dropout (the dense
    network's denoising) draws other masks than eager mode.
    """
    X = digits[0][:200].reshape(-1, 8, 8)
    params = dict(quick_params, pretrain_epochs=3, max_iter=20, n_clusters=4)
    eager = _fit(X, **params)
    compiled = _fit(X, compile=True, **params)
    np.testing.assert_allclose(
        [r["reconstruction_loss"] for r in compiled.history_["pretrain"]],
        [r["reconstruction_loss"] for r in eager.history_["pretrain"]],
        rtol=1e-4,
    )
    assert adjusted_rand_score(eager.labels_, compiled.labels_) > 0.95
    # The fitted model is the plain module, so it pickles like any other.
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(compiled)).predict(X), compiled.labels_)


@pytest.mark.slow
def test_natural_collapse_of_many_small_clusters_never_passes_silently(digits):
    """Many clusters on few images with a rushed joint phase: dying clusters are re-seeded, and when
    clusters empty out anyway, training stops with a warning; no fit loses clusters unwarned."""
    X = digits[0][:200]
    collapsed = relocated = 0
    for seed in range(3):
        est = DeepConvEmbeddingClustering(
            20, pretrain_epochs=3, max_iter=50, update_interval=5, tol=0.0, batch_size=64, n_init=2,
            learning_rate=1e-2, gamma=1.0, random_state=seed, device="cpu",
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est.fit(X)
        messages = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
        initial = np.count_nonzero(est.history_["clustering"][0]["cluster_sizes"])
        relocated += sum(len(r.get("relocations", ())) for r in est.history_["clustering"])
        final = np.bincount(est.labels_, minlength=20)
        if any("emptied out" in m for m in messages):
            collapsed += 1
            # Training stopped and went back: the kept solution has the initial clusters.
            assert np.count_nonzero(final) == initial
        if np.count_nonzero(final) < initial:
            assert any(f"sizes {final.tolist()}" in m for m in messages)
    assert collapsed >= 1, "the case was built to collapse at least once"
    assert relocated >= 1, "dying clusters are re-seeded before training gives up"


def _rows_with(value, row, shape=(10, 4)):
    X = np.random.default_rng(0).uniform(size=shape)
    X[row, 1] = value
    return X


@pytest.mark.parametrize(
    "X, params, message",
    [
        (np.zeros((5, 4)), dict(n_clusters=8), "n_samples=5 should be >= n_clusters=8"),
        (np.zeros((10, 4)), dict(image_shape=(3, 3)), "image_shape=.* n_features=4"),
        (np.zeros((10, 4)), dict(image_shape=(2, 2, 2, 2)), "must be \\(height, width\\)"),
        (np.zeros((10, 4, 4)), dict(image_shape=(2, 8)), "does not match.*leave image_shape=None"),
        (_rows_with(np.nan, 3), {}, "NaN in row 3.*np.nan_to_num"),
        (_rows_with(-np.inf, 7), {}, "infinity in row 7.*drop those rows"),
        (_rows_with(1e200, 2), {}, "magnitude 1e\\+200 in row 2.*float32 range.*Divide X"),
        (np.zeros((0, 4)), {}, "0 sample"),
        (np.zeros((0, 4, 4)), {}, "0 sample"),
        (np.zeros((10, 0, 4)), {}, "no pixels.*at least 1"),
        (np.zeros(10), {}, "Expected 2D array.*Reshape your data to one image per row"),
        (np.zeros((10, 2, 2, 2, 2)), {}, "X has 5 dimensions.*pass \\(n_samples, n_features\\)"),
        (np.array([["a", "b"]] * 10, dtype=object), {}, "not numbers.*uint8 pixels or floats"),
        (np.array([["a", "b"]] * 10), {}, "dtype <U1.*uint8 pixels or floats"),
        (np.zeros((10, 4), dtype=complex), {}, "Complex data not supported.*np.abs"),
        (np.zeros((10, 4)), dict(filters=()), "filters=\\(\\) must be"),
        (np.zeros((10, 4)), dict(device="tpu"), "device='tpu'"),
    ],
)
def test_user_errors_are_clear_value_errors(X, params, message, quick_params):
    """Bad input raises ValueError saying what is wrong and what to do, before torch sees it."""
    params = {**quick_params, "n_clusters": 2, **params}
    est = DeepConvEmbeddingClustering(**params)
    with pytest.raises(ValueError, match=message) as raised:
        est.fit(X)
    assert "torch" not in str(raised.traceback[-1].path)
    assert not [name for name in vars(est) if name.endswith("_")]


def test_sparse_input_is_refused_with_the_fix(quick_params):
    """Sparse matrices, at fit and at predict time, are a TypeError that says to call toarray()."""
    X = np.random.default_rng(0).uniform(size=(20, 16))
    with pytest.raises(TypeError, match="Sparse data.*toarray"):
        DeepConvEmbeddingClustering(2, **quick_params).fit(sparse.csr_matrix(X))
    est = _fit(X, n_clusters=2, **quick_params)
    with pytest.raises(TypeError, match="Sparse data.*toarray"):
        est.predict(sparse.csr_matrix(X))


def test_predict_checks_the_image_shape(quick_params):
    """Images of another shape or channel count, or bad values, are refused at predict time with the fix."""
    X = np.random.default_rng(0).uniform(size=(20, 4, 6))
    est = _fit(X, n_clusters=2, **quick_params)
    with pytest.raises(ValueError, match="resize the images to the training shape, 4x6"):
        est.predict(X.reshape(20, 6, 4))
    with pytest.raises(ValueError, match=r"fitted on \(4, 6, 1\); convert the images to 1 channel.*gray"):
        est.predict(np.repeat(X[..., None], 3, axis=3))
    with pytest.raises(ValueError, match=r"X has 5 features, but .* expecting 24 .* shape \(4, 6, 1\) per row"):
        est.predict(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="NaN in row 1"):
        est.transform(_rows_with(np.nan, 1, shape=(3, 24)))
    with pytest.raises(ValueError, match="0 sample"):
        est.predict_proba(np.zeros((0, 4, 6)))
    with pytest.raises(ValueError, match="embedding_dim=10"):
        est.inverse_transform(np.zeros((2, 3)))


@pytest.mark.parametrize(
    "layout, dtype",
    [
        ("read-only memmap", np.uint8),
        ("read-only memmap", np.float64),
        ("non-contiguous view", np.uint8),
        ("Fortran order", np.float64),
        ("nested lists", np.float64),
    ],
)
def test_any_memory_layout_gives_the_same_model(layout, dtype, quick_params, tmp_path):
    """Read-only memory maps, strided views, Fortran arrays and lists fit and predict as a plain array does."""
    quick_params = dict(quick_params, pretrain_epochs=3, max_iter=10)
    X = (np.random.default_rng(0).uniform(size=(20, 8, 8)) * 255).astype(dtype)
    if layout == "read-only memmap":
        np.save(tmp_path / "X.npy", X)
        same = np.load(tmp_path / "X.npy", mmap_mode="r")
        assert not same.flags.writeable
    elif layout == "non-contiguous view":
        wide = np.zeros((20, 8, 16), dtype=dtype)
        wide[:, :, ::2] = X
        same = wide[:, :, ::2]
        assert not same.flags.c_contiguous
    elif layout == "Fortran order":
        same = np.asfortranarray(X)
    else:
        same = X.tolist()
    reference = _fit(X, n_clusters=2, **quick_params)
    est = _fit(same, n_clusters=2, **quick_params)
    assert est.image_shape_ == (8, 8, 1)
    np.testing.assert_array_equal(est.labels_, reference.labels_)
    np.testing.assert_array_equal(est.predict(same), reference.predict(X))
    np.testing.assert_array_equal(est.transform(same), reference.transform(X))


def test_inference_streams_in_bounded_chunks(digits, quick_params, monkeypatch):
    """predict, predict_proba and transform work a bounded chunk at a time and match whole-array results."""
    from skdcec import _clustering, _inference

    X = digits[0][:50]
    est = _fit(X, **quick_params)
    labels, proba, embedding = est.predict(X), est.predict_proba(X), est.transform(X)
    rows_seen = []
    original = _clustering.log_soft_assignment

    def spy(z, centers, alpha):
        rows_seen.append(len(z))
        return original(z, centers, alpha)

    batch_sizes = []

    class SpyBatches(_inference.ImageBatches):
        def __init__(self, X, *args):
            batch_sizes.append(len(X))
            super().__init__(X, *args)

    monkeypatch.setattr(_inference, "MAX_INFERENCE_BATCH_SIZE", 7)
    monkeypatch.setattr(_clustering, "ASSIGNMENT_CHUNK_ELEMENTS", 2 * 3 * 10)
    monkeypatch.setattr(_clustering, "log_soft_assignment", spy)
    monkeypatch.setattr(_inference, "ImageBatches", SpyBatches)
    est.set_params(batch_size=1)
    # Another batch shape may pick other float32 kernels: close, not equal.
    chunked_proba = est.predict_proba(X)
    np.testing.assert_allclose(chunked_proba, proba, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(est.transform(X), embedding, rtol=1e-4, atol=1e-6)
    clear = np.sort(proba, axis=1)[:, -1] - np.sort(proba, axis=1)[:, -2] > 1e-3
    np.testing.assert_array_equal(est.predict(X)[clear], labels[clear])
    assert max(rows_seen) == 2 and sum(rows_seen) == 2 * len(X)
    assert max(batch_sizes) == 7 and sum(batch_sizes) == 3 * len(X)


def test_inverse_transform_decodes_in_bounded_batches(digits, quick_params, monkeypatch):
    """inverse_transform decodes a batch at a time, with the same images as in one go."""
    from skdcec import _inference

    X = digits[0][:50]
    est = _fit(X, **quick_params)
    embedding = est.transform(X)
    whole = est.inverse_transform(embedding)
    decoded_rows = []
    decode = est.autoencoder_.decode

    def spy(z):
        decoded_rows.append(len(z))
        return decode(z)

    monkeypatch.setattr(est.autoencoder_, "decode", spy)
    monkeypatch.setattr(_inference, "MAX_INFERENCE_BATCH_SIZE", 7)
    est.set_params(batch_size=1)
    np.testing.assert_allclose(est.inverse_transform(embedding), whole, rtol=1e-5, atol=1e-5)
    assert max(decoded_rows) == 7 and sum(decoded_rows) == len(X)


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


def test_memory_pretrains_once_per_fold_in_a_search(digits, quick_params, tmp_path, pretrainings):
    """With memory=, a search over n_clusters pretrains once per fold (plus the refit)."""
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
    assert len(pretrainings) == 3
    # The cached pretraining gives the same model as pretraining afresh.
    fresh = _fit(X, n_clusters=3, **quick_params)
    cached = _fit(X, n_clusters=3, memory=str(tmp_path), **quick_params)
    np.testing.assert_array_equal(fresh.labels_, cached.labels_)
    np.testing.assert_allclose(fresh.transform(X), cached.transform(X), rtol=1e-6)


def test_a_cache_filled_by_another_version_of_skdcec_misses(
    digits, quick_params, tmp_path, pretrainings, monkeypatch
):
    """memory= reuses a pretraining of this version only: another may build or train the model differently."""
    from skdcec import _version

    X = digits[0][:60]
    _fit(X, n_clusters=3, memory=str(tmp_path), **quick_params)
    _fit(X, n_clusters=4, memory=str(tmp_path), **quick_params)
    assert len(pretrainings) == 1
    monkeypatch.setattr(_version, "__version__", "0.0.1")
    _fit(X, n_clusters=3, memory=str(tmp_path), **quick_params)
    assert len(pretrainings) == 2


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


def test_reconstruction_target_matters_with_augment_only(rgb_images, quick_params, tmp_path, pretrainings):
    """The target changes training with augment=True; without it both values are one fit, one cache entry."""
    weights = {}
    for augment in (True, False):
        for target in ("augmented", "clean"):
            params = dict(augment=augment, reconstruction_target=target, memory=str(tmp_path), **quick_params)
            parameters = _fit(rgb_images, **params).autoencoder_.parameters()
            weights[augment, target] = torch.cat([p.detach().flatten() for p in parameters])
    assert not torch.equal(weights[True, "augmented"], weights[True, "clean"])
    torch.testing.assert_close(weights[False, "augmented"], weights[False, "clean"], rtol=0, atol=0)
    assert len(pretrainings) == 3


@pytest.mark.parametrize("augment, epochs", [(False, 200), (True, 500), ((), 200)])
def test_auto_pretrain_epochs_are_dcec_s_or_dec_da_s(augment, epochs, quick_params, one_thread, monkeypatch):
    """pretrain_epochs="auto" pretrains at most 500 epochs with augmentation (DEC-DA), 200 without (DCEC)."""
    from skdcec import _pretraining

    # A window longer than the run: the plateau rule never stops it.
    monkeypatch.setattr(_pretraining, "PRETRAIN_PLATEAU_WINDOW", 1000)
    params = {**quick_params, "pretrain_epochs": "auto", "max_iter": 0}
    params.update(filters=(2, 2, 2), embedding_dim=2)
    est = _fit(np.random.default_rng(0).uniform(size=(8, 4, 4)), 2, augment=augment, **params)
    assert [record["epoch"] for record in est.history_["pretrain"]] == list(range(1, epochs + 1))
    assert est.get_params()["pretrain_epochs"] == "auto"


def test_augment_selection_is_validated(quick_params):
    """Unknown augmentation names are a ValueError that lists the valid ones."""
    est = DeepConvEmbeddingClustering(2, augment=("shift", "blur"), **quick_params)
    with pytest.raises(ValueError, match="unknown augmentations \\['blur'\\]"):
        est.fit(np.zeros((10, 16)))


def test_fit_and_inference_cap_torch_threads_and_restore_them(digits, quick_params, monkeypatch):
    """Training, inference and decoding run on at most the available cores; the user's setting survives."""
    from skdcec import _device, _fitting, _inference

    seen = []

    def recording_embed(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return embed(*args, **kwargs)

    embed = _inference.embed
    monkeypatch.setattr(_inference, "embed", recording_embed)
    monkeypatch.setattr(_fitting, "embed", recording_embed)
    monkeypatch.setattr(_device.joblib, "cpu_count", lambda only_physical_cores=False: 1)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        est = DeepConvEmbeddingClustering(3, random_state=0, **quick_params).fit(digits[0][:60])
        assert torch.get_num_threads() == 3
        est.predict(digits[0][:10])
        assert torch.get_num_threads() == 3
        decode = est.autoencoder_.decode

        def recording_decode(z):
            seen.append(torch.get_num_threads())
            return decode(z)

        monkeypatch.setattr(est.autoencoder_, "decode", recording_decode)
        est.inverse_transform(est.cluster_centers_)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(previous)
    assert seen and set(seen) == {1}


def _spectral_start(X, n_clusters, spectral_class, quick_params, monkeypatch):
    """An estimator fitted from a spectral start by ``spectral_class``, with no joint training."""
    from skdcec import _initialization

    monkeypatch.setattr(_initialization, "SpectralClustering", spectral_class)
    params = dict(quick_params, max_iter=0)
    est = DeepConvEmbeddingClustering(n_clusters, init="spectral", random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X)


def test_spectral_init_centres_are_the_means_of_spectral_clusters(digits, quick_params, monkeypatch):
    """init="spectral" starts every centre at the mean embedding of one spectral cluster of the graph."""
    from skdcec._initialization import SpectralClustering

    seen = {}

    class Recording(SpectralClustering):
        def fit_predict(self, X, y=None):
            seen["X"], seen["labels"] = X, super().fit_predict(X)
            return seen["labels"]

    X = digits[0][:150]
    est = _spectral_start(X, 4, Recording, quick_params, monkeypatch)
    expected = np.stack([seen["X"][seen["labels"] == c].mean(axis=0) for c in range(4)])
    np.testing.assert_allclose(est.cluster_centers_, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(seen["X"], est.transform(X), rtol=1e-5, atol=1e-6)


def test_spectral_init_seeds_an_empty_spectral_cluster_at_a_sample(digits, quick_params, monkeypatch):
    """A spectral cluster that got no sample still gets a finite centre: one of the embeddings."""
    from skdcec._initialization import SpectralClustering

    class MissingLastCluster(SpectralClustering):
        def fit_predict(self, X, y=None):
            return np.arange(len(X)) % (self.n_clusters - 1)

    X = digits[0][:60]
    est = _spectral_start(X, 3, MissingLastCluster, quick_params, monkeypatch)
    embeddings = est.transform(X)
    assert np.isfinite(est.cluster_centers_).all()
    assert np.isclose(np.abs(embeddings - est.cluster_centers_[2]).sum(axis=1), 0, atol=1e-4).any()


def test_spectral_init_is_reproducible_and_works_on_tabular_data(quick_params):
    """Same seed, same spectral start and labels, on flat blobs as on images; one cluster is the mean."""
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(60, n_features=2, centers=3, random_state=0)
    first = DeepConvEmbeddingClustering(3, init="spectral", random_state=0, **quick_params).fit(X)
    second = DeepConvEmbeddingClustering(3, init="spectral", random_state=0, **quick_params).fit(X)
    np.testing.assert_array_equal(first.labels_, second.labels_)
    np.testing.assert_array_equal(first.cluster_centers_, second.cluster_centers_)
    single = DeepConvEmbeddingClustering(1, init="spectral", random_state=0, **quick_params).fit(X)
    assert (single.labels_ == 0).all()


@pytest.mark.parametrize(
    "shape, dtype",
    [((8, 8), np.float64), ((5, 13), np.float32), ((9, 7, 3), np.float64), ((12, 12, 3), np.uint8)],
)
def test_predictions_do_not_depend_on_how_rows_are_batched(shape, dtype, quick_params):
    """Rows predicted alone, in subsets of many sizes, or all at once, get the same outputs."""
    rng = np.random.default_rng(0)
    n = 1000
    if dtype == np.uint8:
        X = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    else:
        X = rng.normal(size=(n, *shape)).astype(dtype)
    est = _fit(X[:60], n_clusters=3, **dict(quick_params, pretrain_epochs=1, max_iter=2))
    whole_labels, whole_proba, whole_embedding = est.predict(X), est.predict_proba(X), est.transform(X)
    for n_rows in (1, 2, 3, 7, 64, 255, 256, 1000):
        for start in sorted({0, n - n_rows, (n - n_rows) // 2}):
            part = X[start : start + n_rows]
            rows = slice(start, start + n_rows)
            np.testing.assert_array_equal(est.predict(part), whole_labels[rows])
            # scikit-learn's tolerance for subset invariance of float64 output.
            np.testing.assert_allclose(est.predict_proba(part), whole_proba[rows], rtol=1e-7)
            np.testing.assert_allclose(est.transform(part), whole_embedding[rows], rtol=1e-7)


@pytest.mark.parametrize("fit_uint8", [True, False])
def test_predicting_another_kind_of_pixels_than_fit_is_an_error(fit_uint8, quick_params):
    """uint8 pixels for a float-fitted model (or floats for a uint8 one) are refused, not mis-scaled."""
    images = load_digits().images[:60]
    as_uint8 = np.rint(images * 255 / 16).astype(np.uint8)
    as_float = images * 255 / 16
    est = _fit(as_uint8 if fit_uint8 else as_float, **quick_params)
    with pytest.raises(ValueError, match="uint8" if fit_uint8 else "float"):
        est.predict(as_float if fit_uint8 else as_uint8)
    est.predict(as_uint8 if fit_uint8 else as_float.astype(np.float32))


def test_spectral_start_with_as_many_images_as_clusters_is_a_clear_error(quick_params):
    """init='spectral' needs more images than clusters, and says so before training."""
    est = DeepConvEmbeddingClustering(4, init="spectral", **quick_params)
    with pytest.raises(ValueError, match="more images than clusters"):
        est.fit(np.random.default_rng(0).normal(size=(4, 8, 8)))


@pytest.mark.parametrize("augment", [["shift", ["x"]], ("rotate", 3)])
def test_augment_names_must_be_strings(augment, quick_params):
    """Nested or non-string augmentation names are a clear ValueError, not a TypeError."""
    est = DeepConvEmbeddingClustering(2, augment=augment, **quick_params)
    with pytest.raises(ValueError, match="tuple of names"):
        est.fit(np.random.default_rng(0).normal(size=(10, 8, 8)))



@pytest.mark.parametrize(
    "shape, params, network",
    [
        ((30, 64), {}, DenseAutoencoder),  # rows without a layout: vectors
        ((30, 64), {"image_shape": (8, 8)}, ConvAutoencoder),  # rows with a layout: images
        ((30, 8, 8), {}, ConvAutoencoder),
        ((30, 6, 5, 3), {}, ConvAutoencoder),
        ((30, 64), {"autoencoder": "conv"}, ConvAutoencoder),
        ((30, 8, 8), {"autoencoder": "dense"}, DenseAutoencoder),
    ],
)
def test_autoencoder_auto_picks_dense_for_vectors_and_conv_for_images(shape, params, network, quick_params):
    """autoencoder="auto" builds the dense network for 2-D X without image_shape, else the conv one."""
    X = np.random.default_rng(0).uniform(size=shape)
    est = _fit(X, **params, **quick_params)
    assert type(est.autoencoder_) is network
    assert est.transform(X).shape == (30, 10)
    assert est.inverse_transform(est.cluster_centers_).shape == (3, *shape[1:])
    restored = pickle.loads(pickle.dumps(est))
    assert type(restored.autoencoder_) is network
    np.testing.assert_array_equal(restored.predict(X), est.predict(X))


def test_dense_autoencoder_has_the_hidden_layers_asked_for(quick_params):
    """hidden_layers sets the dense encoder's widths; () leaves one linear layer each way."""
    X = np.random.default_rng(0).uniform(size=(30, 12))
    for hidden_layers, widths in [((7, 5), [7, 5, 10]), ((), [10])]:
        est = _fit(X, hidden_layers=hidden_layers, **quick_params)
        linear = [m.out_features for m in est.autoencoder_.encoder if isinstance(m, torch.nn.Linear)]
        assert linear == widths


def test_dense_autoencoder_clusters_separated_vectors(quick_params):
    """Well-separated blobs of vectors come out as their blobs."""
    X, y = make_blobs(300, n_features=40, centers=3, cluster_std=0.5, random_state=0)
    est = _fit(X, **{**quick_params, "pretrain_epochs": 30})
    assert type(est.autoencoder_) is DenseAutoencoder
    assert adjusted_rand_score(y, est.labels_) > 0.95


def test_dense_pretraining_denoises_and_the_fitted_network_sees_clean_input(monkeypatch, quick_params):
    """The dense autoencoder pretrains with DEC's input dropout; joint phase and inference have none."""
    from skdcec import _pretraining

    pretrained = []
    original = _pretraining.pretrain

    def spy(autoencoder, data, **kwargs):
        pretrained.append(autoencoder.input_dropout)
        return original(autoencoder, data, **kwargs)

    monkeypatch.setattr(_pretraining, "pretrain", spy)
    X = np.random.default_rng(0).uniform(size=(40, 12))
    est = _fit(X, **quick_params)
    assert pretrained == [_pretraining.DENSE_INPUT_DROPOUT] and pretrained[0] > 0
    assert est.autoencoder_.input_dropout == 0.0
    assert pickle.loads(pickle.dumps(est)).autoencoder_.input_dropout == 0.0
    np.testing.assert_array_equal(est.transform(X), est.transform(X))


@pytest.mark.parametrize(
    "params, message",
    [
        ({"augment": True}, "autoencoder='auto' picks it for 2-D X without image_shape"),
        ({"augment": ("shift",), "autoencoder": "dense"}, "pass augment=False"),
        ({"hidden_layers": (500, 0)}, "hidden_layers=\\(500, 0\\) must be a tuple of positive ints"),
    ],
)
def test_dense_autoencoder_errors_name_the_fix(params, message, quick_params):
    """Augmenting vectors and bad widths are ValueErrors that say what to do instead."""
    with pytest.raises(ValueError, match=message):
        _fit(np.random.default_rng(0).uniform(size=(30, 16)), **params, **quick_params)


@pytest.mark.parametrize(
    "pretrain_epochs, batch_size, expected",
    [
        ("auto", 1, 100),  # 16 mini-batches an epoch: half the 200 epochs is past 1,000 mini-batches
        ("auto", 2, 125),  # 8 mini-batches an epoch: 1,000 mini-batches take 125 epochs
        ("auto", 16, 200),  # 1 mini-batch an epoch: the plateau rule never applies
        (120, 1, 120),
    ],
)
def test_auto_pretraining_stops_on_a_plateau_and_an_int_does_not(
    pretrain_epochs, batch_size, expected, quick_params, one_thread
):
    """A flat loss stops "auto" after half its 200 epochs and 1,000 mini-batches, the earliest it may; an int trains on."""
    params = {**quick_params, "pretrain_epochs": pretrain_epochs, "max_iter": 0, "learning_rate": 1e-12}
    params.update(filters=(2, 2, 2), embedding_dim=2, batch_size=batch_size)
    est = _fit(np.random.default_rng(0).uniform(size=(16, 4, 4)), 2, **params)
    assert len(est.history_["pretrain"]) == expected


@pytest.mark.parametrize("pretrain_epochs, expected", [("auto", 1000), (30, 30)])
def test_auto_pretraining_of_the_dense_network_runs_1000_mini_batches(
    pretrain_epochs, expected, quick_params, one_thread
):
    """A few feature vectors, one mini-batch an epoch: "auto" trains 1,000 epochs of the dense network, an int its own."""
    params = {**quick_params, "pretrain_epochs": pretrain_epochs, "max_iter": 0, "learning_rate": 1e-12}
    params.update(hidden_layers=(4, 4), embedding_dim=2)
    est = _fit(np.random.default_rng(0).uniform(size=(16, 6)), 2, **params)
    assert len(est.history_["pretrain"]) == expected


@pytest.mark.parametrize(
    "max_iter, update_interval, n_samples, expected",
    [
        ("auto", "auto", 400, (800, 10, 80)),  # 400 passes of 2 batches, an update every 5
        ("auto", "auto", 9298, (14800, 140, 140)),  # an update every 140 batches: DCEC's
        ("auto", "auto", 70000, (20000, 140, 140)),  # DCEC's MNIST figures
        (20000, 140, 400, (20000, 140, 140)),  # DCEC's own setting, one parameter away
        (40, 10, 400, (40, 10, 10)),
    ],
)
def test_joint_schedule_scales_with_the_data(max_iter, update_interval, n_samples, expected):
    """max_iter and update_interval "auto" count passes over the data, capped at DCEC's figures."""
    from skdcec._fitting import resolve_joint_schedule

    assert resolve_joint_schedule(max_iter, update_interval, n_samples, 256) == expected


def test_default_joint_phase_is_counted_in_passes(digits, one_thread):
    """With the defaults, 100 images train at most 400 passes of one mini-batch each."""
    est = DeepConvEmbeddingClustering(3, pretrain_epochs=2, n_init=2, device="cpu", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(digits[0][:100].reshape(-1, 8, 8))
    assert est.n_iter_ <= 400
    assert est.get_params()["max_iter"] == "auto"


def test_dense_fits_with_one_seed_agree_and_keep_the_global_generator(quick_params, one_thread):
    """The denoising pretraining's dropout is seeded: same random_state, same model; torch's generator untouched."""
    X = np.random.default_rng(0).uniform(size=(40, 12))
    state = torch.random.get_rng_state()
    first, second = (_fit(X, **quick_params).transform(X) for _ in range(2))
    np.testing.assert_allclose(first, second, rtol=1e-6, atol=1e-7)
    assert torch.equal(torch.random.get_rng_state(), state)
