"""The pictures: what each figure shows, for every input layout, and a clear error without matplotlib."""

import sys
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from skdcec import DeepConvEmbeddingClustering

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from PIL import Image

from skdcec import plotting

QUICK = {
    "pretrain_epochs": 3,
    "max_iter": 20,
    "update_interval": 10,
    "batch_size": 64,
    "n_init": 2,
    "device": "cpu",
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _fit(X, n_clusters=3, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return DeepConvEmbeddingClustering(n_clusters, random_state=0, **{**QUICK, **params}).fit(X)


@pytest.fixture(scope="module")
def digit_images():
    from sklearn.datasets import load_digits

    return np.rint(load_digits().images[:150] * 255 / 16).astype(np.uint8)


@pytest.fixture(scope="module")
def fitted(digit_images):
    return _fit(digit_images)


def _png_size(fig, tmp_path):
    path = tmp_path / "figure.png"
    fig.savefig(path)
    with Image.open(path) as image:
        image.load()
        return image.size


def test_montage_shows_the_images_nearest_to_the_centre(fitted, digit_images):
    """The montage shows members of the cluster, nearest first, titled by their file names."""
    embedding = fitted.transform(digit_images)
    cluster = int(np.bincount(fitted.predict(digit_images)).argmax())
    names = [f"folder/image_{i:03d}.png" for i in range(len(digit_images))]
    fig = plotting.plot_cluster_montage(
        fitted, digit_images, cluster, n_images=6, embedding=embedding, filenames=names
    )
    assert isinstance(fig, matplotlib.figure.Figure)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 6

    distances = np.linalg.norm(embedding - fitted.cluster_centers_[cluster], axis=1)
    members = np.flatnonzero(fitted.predict(digit_images) == cluster)
    expected = members[np.argsort(distances[members])][:6]
    assert [ax.get_title() for ax in shown] == [f"image_{i:03d}.png" for i in expected]
    np.testing.assert_allclose(shown[0].images[0].get_array(), digit_images[expected[0]] / 255, atol=1e-6)
    assert f"Cluster {cluster}: {len(members)} images" in fig.texts[0].get_text()


def test_montage_computes_the_embedding_itself(fitted, digit_images):
    """Without a precomputed embedding, the montage embeds the images itself, to the same result."""
    given = plotting.plot_cluster_montage(fitted, digit_images, 0, embedding=fitted.transform(digit_images))
    computed = plotting.plot_cluster_montage(fitted, digit_images, 0)
    assert [ax.images[0].get_array().tolist() for ax in given.axes] == [
        ax.images[0].get_array().tolist() for ax in computed.axes
    ]


def test_montage_of_an_empty_cluster_says_so(fitted, digit_images):
    """A cluster without members gives a figure that says it is empty."""
    embedding = np.repeat(fitted.cluster_centers_[:1], len(digit_images), axis=0)
    fig = plotting.plot_cluster_montage(fitted, digit_images, 1, embedding=embedding)
    assert "empty" in fig.axes[0].texts[0].get_text()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"cluster": 3}, "not a cluster"),
        ({"cluster": -1}, "not a cluster"),
        ({"cluster": 0, "filenames": ["a.png"]}, "one per image"),
        ({"cluster": 0, "embedding": np.zeros((2, 10))}, "embedding has shape"),
    ],
)
def test_montage_checks_its_arguments(fitted, digit_images, kwargs, match):
    """Wrong clusters, names or embeddings are reported clearly."""
    with pytest.raises(ValueError, match=match):
        plotting.plot_cluster_montage(fitted, digit_images, **kwargs)


def test_images_of_the_wrong_shape_are_refused(fitted, digit_images):
    """Images that are not of the training shape are refused, naming both shapes."""
    with pytest.raises(ValueError, match=r"\(8, 8, 1\)"):
        plotting.plot_embedding(fitted, digit_images[:, :4])


@pytest.mark.parametrize("layout", ["flat float", "3-D uint8", "4-D RGB uint8"])
def test_prototypes_in_every_layout(layout, digit_images, rgb_images):
    """Prototypes are drawn for flat, grayscale and colour models, one titled image per cluster."""
    if layout == "flat float":
        X = digit_images.reshape(len(digit_images), -1).astype(np.float64) / 16
    elif layout == "3-D uint8":
        X = digit_images
    else:
        X = rgb_images
    est = _fit(X)
    fig = plotting.plot_prototypes(est)
    assert len(fig.axes) == 3
    sizes = np.bincount(est.labels_, minlength=3)
    expected = [f"cluster {i}\n{n} image{'' if n == 1 else 's'}" for i, n in enumerate(sizes)]
    assert [ax.get_title() for ax in fig.axes] == expected
    decoded = fig.axes[0].images[0].get_array()
    assert decoded.shape == est.image_shape_[:2] + ((3,) if layout == "4-D RGB uint8" else ())
    assert 0 <= decoded.min() and decoded.max() <= 1


def test_embedding_map(fitted, digit_images, tmp_path):
    """The map has a dot per image, a cross per centre, spread-out thumbnails and a legend of sizes."""
    fig = plotting.plot_embedding(fitted, digit_images, n_thumbnails=12)
    ax = fig.axes[0]
    dots, centres = ax.collections
    assert len(dots.get_offsets()) == len(digit_images)
    assert len(centres.get_offsets()) == fitted.n_clusters
    thumbnails = [artist for artist in ax.artists if isinstance(artist, matplotlib.offsetbox.AnnotationBbox)]
    assert 1 <= len(thumbnails) <= 12
    sizes = np.bincount(fitted.predict(digit_images), minlength=3)
    assert [text.get_text() for text in ax.get_legend().get_texts()] == [
        f"{i} ({sizes[i]})" for i in range(3)
    ]
    width, height = _png_size(fig, tmp_path)
    assert width >= 800 and height >= 600


def test_embedding_map_without_thumbnails(fitted, digit_images):
    """n_thumbnails=0 draws dots only."""
    fig = plotting.plot_embedding(fitted, digit_images, n_thumbnails=0)
    assert not fig.axes[0].artists


def test_training_history_curves(fitted):
    """The three panels plot the pretraining losses, joint losses and label changes of history_."""
    fig = plotting.plot_training_history(fitted)
    pretrain, joint, changes = fig.axes
    losses = [record["reconstruction_loss"] for record in fitted.history_["pretrain"]]
    np.testing.assert_allclose(pretrain.lines[0].get_ydata(), losses)
    assert pretrain.get_yscale() == "log"
    assert [line.get_label() for line in joint.lines] == ["reconstruction", "clustering (KL)"]
    recorded = [
        r["label_change_fraction"]
        for r in fitted.history_["clustering"]
        if r["label_change_fraction"] is not None
    ]
    if recorded:
        np.testing.assert_allclose(changes.lines[0].get_ydata(), recorded)


def test_training_history_without_training(digit_images):
    """Without pretraining or joint training, the panels say so instead of failing."""
    est = _fit(digit_images, pretrain_epochs=0, max_iter=0)
    fig = plotting.plot_training_history(est)
    assert [ax.texts[0].get_text() for ax in fig.axes] == [
        "no pretraining epochs",
        "no joint training",
        "fewer than two target updates",
    ]


def test_k_selection_curves():
    """Both scores are drawn against k, in both spaces, with the chosen k marked; None is a gap."""
    fig = plotting.plot_k_selection(
        [2, 3, 5],
        [0.5, None, 0.4],
        [100.0, 2000.0, 300.0],
        shared_silhouette=[0.1, 0.2, 0.1],
        shared_calinski_harabasz=[10.0, 20.0, 30.0],
        best=2,
    )
    silhouette, calinski_harabasz = fig.axes
    embedding, shared, chosen = silhouette.lines
    np.testing.assert_array_equal(embedding.get_xdata(), [2, 3, 5])
    assert np.isnan(embedding.get_ydata()[1])
    np.testing.assert_array_equal(shared.get_ydata(), [0.1, 0.2, 0.1])
    assert chosen.get_xdata()[0] == 2
    assert calinski_harabasz.get_yscale() == "log"
    with pytest.raises(ValueError, match="one per k"):
        plotting.plot_k_selection([2, 3], [0.1], [1.0, 2.0])


@pytest.mark.parametrize(
    "draw",
    [
        lambda est, X: plotting.plot_cluster_montage(est, X, 0),
        lambda est, X: plotting.plot_prototypes(est),
        lambda est, X: plotting.plot_embedding(est, X),
        lambda est, X: plotting.plot_training_history(est),
    ],
)
def test_unfitted_estimator_is_refused(draw, digit_images):
    """Every picture of an estimator needs a fitted one."""
    with pytest.raises(NotFittedError):
        draw(DeepConvEmbeddingClustering(), digit_images)


def test_figures_write_readable_pngs(fitted, digit_images, tmp_path):
    """Saved figures open with Pillow at a size where every image is legible."""
    largest = int(np.bincount(fitted.labels_).argmax())  # 16 images fill two rows of eight
    montage = plotting.plot_cluster_montage(fitted, digit_images, largest, n_images=16)
    width, height = _png_size(montage, tmp_path)
    assert width >= 8 * 100 and height >= 2 * 100
    width, height = _png_size(plotting.plot_prototypes(fitted), tmp_path)
    assert width >= 3 * 100 and height >= 100


def test_missing_matplotlib_names_the_extra(fitted, monkeypatch):
    """Without matplotlib, the error says how to install it."""
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r'pip install "skdcec\[plot\]"'):
        plotting.plot_prototypes(fitted)


def test_image_grid_draws_every_image_with_its_title():
    """Any images, uint8 or float, in a grid with one title each."""
    images = np.zeros((5, 8, 8, 3), dtype=np.uint8)
    fig = plotting.plot_image_grid(images, ["a", "b", "c", "d", "e"], n_cols=2, title="Grid")
    assert [ax.get_title() for ax in fig.axes] == ["a", "b", "c", "d", "e"]
    assert fig._suptitle.get_text() == "Grid"
    plt.close(fig)
    fig = plotting.plot_image_grid(np.full((2, 4, 4, 1), 0.5))
    assert len(fig.axes) == 2
    plt.close(fig)


def test_image_grid_refuses_images_without_channels():
    with pytest.raises(ValueError, match="height, width, channels"):
        plotting.plot_image_grid(np.zeros((2, 8, 8)))
