"""Pictures of a fitted clusterer: montages, prototypes, embedding map, training curves, k selection.

Every function returns a :class:`matplotlib.figure.Figure` made with pyplot,
so ``plt.show()`` shows it and ``fig.savefig(path)`` writes it. matplotlib is
imported when a function is called; install it with
``pip install "skdcec[plot]"``.
"""

import math
import os

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from skdcec._text import shorten

__all__ = [
    "plot_cluster_montage",
    "plot_embedding",
    "plot_image_grid",
    "plot_k_selection",
    "plot_prototypes",
    "plot_training_history",
]

# Inches per image in a grid: about 125 pixels at matplotlib's default 100 dpi.
CELL_INCHES = 1.25
# Space between images, around the grid, per line of an image's title and
# for the figure's title, in inches.
GRID_GAP = 0.08
GRID_MARGIN = 0.05
TITLE_LINE_INCHES = 0.13
SUPTITLE_INCHES = 0.4
# Average width of a character of the figure's title.
TITLE_CHARACTER_INCHES = 0.075
# Longest side of a thumbnail on the embedding map, in points.
THUMBNAIL_SIZE = 30
# Thumbnails on the embedding map keep at least this distance from each
# other, as a fraction of the map's width and height.
THUMBNAIL_GAP = 0.07
# Points considered for thumbnails on the embedding map, drawn at random.
THUMBNAIL_CANDIDATES = 5000
# Images smaller than this many pixels on their longer side are drawn with
# nearest-neighbour interpolation, so that their pixels stay crisp.
SMALL_IMAGE = 64


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            'skdcec.plotting needs matplotlib, which is not installed; install it with pip install "skdcec[plot]".'
        ) from exc
    return plt


# ------------------------------------------------------------------ images


def _clusterer(estimator):
    """The clusterer of ``estimator``: itself, or the last step of a pipeline."""
    return estimator[-1] if isinstance(estimator, Pipeline) else estimator


def _image_stack(estimator, images, name="images"):
    """``images`` in the estimator's layout as an (n, height, width, channels) view.

    A pipeline's front end (such as :class:`~skdcec.PretrainedFeatures`)
    takes images of any size: 3-D and 4-D images are taken as they are.
    """
    if isinstance(estimator, Pipeline):
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[..., np.newaxis]
        if images.ndim != 4:
            raise ValueError(
                f"{name} has shape {images.shape}; a pipeline's pictures need 3-D (n, height, width) "
                "or 4-D (n, height, width, channels) images."
            )
        return images
    height, width, channels = estimator.image_shape_
    images = np.asarray(images)
    if images.ndim == 2:
        if images.shape[1] != height * width * channels:
            raise ValueError(
                f"{name} has {images.shape[1]} features per row but the estimator was fitted on "
                f"images of shape {estimator.image_shape_}; pass the images given to fit."
            )
        return images.reshape(len(images), height, width, channels)
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4 or images.shape[1:] != (height, width, channels):
        raise ValueError(
            f"{name} has shape {images.shape} but the estimator was fitted on images of shape "
            f"{estimator.image_shape_}; pass the images given to fit, in the same layout."
        )
    return images


def _displayable(pixels):
    """Float images in [0, 1] that imshow understands: (n, h, w) or (n, h, w, 3 or 4)."""
    pixels = np.asarray(pixels)
    if pixels.dtype == np.uint8:
        pixels = pixels.astype(np.float32) / 255
    else:
        pixels = pixels.astype(np.float32)
        low, high = float(np.min(pixels, initial=0.0)), float(np.max(pixels, initial=1.0))
        # Values outside [0, 1] have an unknown scale: stretch them jointly,
        # which keeps the images comparable with each other.
        if low < 0 or high > 1:
            pixels = (pixels - low) / (high - low) if high > low else np.zeros_like(pixels)
    channels = pixels.shape[-1]
    if channels == 1:
        return pixels[..., 0]
    if channels in (3, 4):
        return pixels
    return pixels.mean(axis=-1)


def _imshow_options(image):
    gray = image.ndim == 2
    small = max(image.shape[:2]) < SMALL_IMAGE
    return {
        "cmap": "gray" if gray else None,
        "vmin": 0.0,
        "vmax": 1.0,
        "interpolation": "nearest" if small else "antialiased",
    }


def plot_image_grid(images, titles=None, *, n_cols=7, title=""):
    """Images in a grid, each with a small title, under one figure title.

    Parameters
    ----------
    images : array-like of shape (n_images, height, width, channels)
        Pixels: ``uint8``, or floats in ``[0, 1]`` (other floats are stretched
        jointly to ``[0, 1]``); 1, 3 or 4 channels.
    titles : list of str, optional
        A title per image, lines separated by ``"\\n"``; none by default.
    n_cols : int, default=7
        Images per row.
    title : str, default=""
        Title of the figure.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The grid.

    Examples
    --------
    >>> import numpy as np
    >>> from skdcec.plotting import plot_image_grid
    >>> fig = plot_image_grid(np.zeros((3, 8, 8, 1), dtype=np.uint8), ["a", "b", "c"], title="Zeros")
    >>> len(fig.axes)
    3
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(
            f"images has shape {images.shape}; pass an array of shape (n_images, height, width, channels)."
        )
    titles = [""] * len(images) if titles is None else list(titles)
    return _image_grid(_pyplot(), _displayable(images), titles, n_cols, title)


def _image_grid(plt, images, titles, n_cols, title):
    """A figure of ``images`` (displayable, in [0, 1]) in a grid with small titles."""
    n_images = len(images)
    n_cols = max(1, min(n_cols, n_images))
    n_rows = max(1, math.ceil(n_images / n_cols))
    height, width = images.shape[1:3]
    # Laid out by hand, in inches: a layout engine takes longer than drawing.
    axes_width = CELL_INCHES - GRID_GAP
    axes_height = axes_width * min(4.0, max(0.25, height / width))
    title_lines = max((label.count("\n") + 1 for label in titles if label), default=0)
    title_height = title_lines * TITLE_LINE_INCHES + (GRID_GAP if title_lines else 0.0)
    row_height = axes_height + title_height + GRID_GAP
    grid_width = n_cols * CELL_INCHES
    # Wide enough for the title too, with the grid centred under it.
    fig_width = max(grid_width + 2 * GRID_MARGIN, len(title) * TITLE_CHARACTER_INCHES)
    fig_height = SUPTITLE_INCHES + n_rows * row_height + GRID_MARGIN
    fig = plt.figure(figsize=(fig_width, fig_height))
    for i, (image, label) in enumerate(zip(images, titles)):
        row, col = divmod(i, n_cols)
        left = (fig_width - grid_width) / 2 + col * CELL_INCHES + GRID_GAP / 2
        bottom = fig_height - SUPTITLE_INCHES - (row + 1) * row_height + GRID_GAP
        ax = fig.add_axes(
            (left / fig_width, bottom / fig_height, axes_width / fig_width, axes_height / fig_height)
        )
        ax.set_axis_off()
        ax.imshow(image, **_imshow_options(image))
        if label:
            ax.set_title(label, fontsize=7, pad=2)
    fig.suptitle(title, fontsize=10, y=1 - SUPTITLE_INCHES / 2 / fig_height, va="center")
    return fig


def _nearest_centers(embedding, centers):
    """Cluster of every embedding (the nearest centre) and squared distances to all centres."""
    distances = (
        np.square(embedding).sum(axis=1)[:, np.newaxis]
        - 2 * embedding @ centers.T
        + np.square(centers).sum(axis=1)[np.newaxis, :]
    )
    distances = np.maximum(distances, 0.0)
    return distances.argmin(axis=1), distances


def _checked_embedding(estimator, images, embedding):
    if embedding is None:
        embedding = estimator.transform(images)
    embedding = np.asarray(embedding, dtype=np.float64)
    embedding_dim = _clusterer(estimator).embedding_dim
    if embedding.shape != (len(images), embedding_dim):
        raise ValueError(
            f"embedding has shape {embedding.shape} but should be ({len(images)}, "
            f"{embedding_dim}): the output of estimator.transform(images)."
        )
    return embedding


# ---------------------------------------------------------------- pictures


def plot_cluster_montage(
    estimator, images, cluster, *, n_images=32, n_cols=8, embedding=None, filenames=None
):
    """Show the most typical images of one cluster: those nearest to its centre.

    Parameters
    ----------
    estimator : DeepConvEmbeddingClustering or Pipeline
        A fitted estimator, or a fitted pipeline that ends with one (such
        as :class:`~skdcec.PretrainedFeatures` and the clusterer), whose
        front end takes 3-D or 4-D images of any size.
    images : array-like of shape (n_samples, n_features), (n_samples, height, width) \
            or (n_samples, height, width, channels)
        Images laid out as in ``fit``, typically the training images.
    cluster : int
        The cluster to show, in ``[0, n_clusters)``.
    n_images : int, default=32
        Most images to show.
    n_cols : int, default=8
        Images per row.
    embedding : array-like of shape (n_samples, embedding_dim), default=None
        ``estimator.transform(images)``, when already computed.
    filenames : sequence of str, default=None
        Names of the images, shown (shortened) under each one.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The montage, titled with the cluster's size.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")  # draw off-screen, without a window
    >>> import matplotlib.pyplot as plt
    >>> from sklearn.datasets import load_digits
    >>> from skdcec import DeepConvEmbeddingClustering
    >>> from skdcec.plotting import plot_cluster_montage
    >>> X = load_digits().images[:100]
    >>> est = DeepConvEmbeddingClustering(3, pretrain_epochs=2, max_iter=10,
    ...                                   random_state=0).fit(X)
    >>> fig = plot_cluster_montage(est, X, cluster=0, n_images=8)
    >>> len(fig.axes) <= 8
    True
    >>> plt.close(fig)
    """
    plt = _pyplot()
    check_is_fitted(estimator)
    stack = _image_stack(estimator, images)
    embedding = _checked_embedding(estimator, stack, embedding)
    centers = _clusterer(estimator).cluster_centers_
    n_clusters = len(centers)
    if not (0 <= cluster < n_clusters):
        raise ValueError(f"cluster={cluster} is not a cluster of this estimator; pass 0 to {n_clusters - 1}.")
    if filenames is not None and len(filenames) != len(stack):
        raise ValueError(f"filenames has {len(filenames)} names for {len(stack)} images; pass one per image.")
    labels, distances = _nearest_centers(embedding, centers)
    members = np.flatnonzero(labels == cluster)
    if len(members) == 0:
        fig, ax = plt.subplots(figsize=(4, 1.5), layout="constrained")
        ax.set_axis_off()
        ax.text(0.5, 0.5, f"Cluster {cluster} is empty", ha="center", va="center")
        return fig
    typical = members[np.argsort(distances[members, cluster], kind="stable")][:n_images]
    titles = [""] * len(typical)
    if filenames is not None:
        titles = [shorten(os.path.basename(str(filenames[i]))) for i in typical]
    noun = "image" if len(members) == 1 else "images"
    title = f"Cluster {cluster}: {len(members)} {noun}, the {len(typical)} nearest to its centre"
    return _image_grid(plt, _displayable(stack[typical]), titles, n_cols, title)


def plot_prototypes(estimator, *, n_cols=10):
    """Show the decoded cluster centres: ``inverse_transform(cluster_centers_)``.

    Each centre of the embedding is decoded to an image, the cluster's
    prototype, titled with the cluster's size in the training data.

    Parameters
    ----------
    estimator : DeepConvEmbeddingClustering
        A fitted estimator.
    n_cols : int, default=10
        Prototypes per row.

    Returns
    -------
    fig : matplotlib.figure.Figure
        One image per cluster.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")  # draw off-screen, without a window
    >>> import matplotlib.pyplot as plt
    >>> from sklearn.datasets import load_digits
    >>> from skdcec import DeepConvEmbeddingClustering
    >>> from skdcec.plotting import plot_prototypes
    >>> X = load_digits().images[:100]
    >>> est = DeepConvEmbeddingClustering(3, pretrain_epochs=2, max_iter=10,
    ...                                   random_state=0).fit(X)
    >>> fig = plot_prototypes(est)
    >>> [ax.get_title().splitlines()[0] for ax in fig.axes]
    ['cluster 0', 'cluster 1', 'cluster 2']
    >>> plt.close(fig)
    """
    plt = _pyplot()
    check_is_fitted(estimator)
    prototypes = _image_stack(estimator, estimator.inverse_transform(estimator.cluster_centers_))
    n_clusters = len(prototypes)
    sizes = np.bincount(estimator.labels_, minlength=n_clusters)
    titles = [f"cluster {i}\n{size} image{'' if size == 1 else 's'}" for i, size in enumerate(sizes)]
    title = "Prototypes: the cluster centres decoded to images"
    return _image_grid(plt, _displayable(prototypes), titles, n_cols, title)


def plot_embedding(estimator, images, *, embedding=None, n_thumbnails=60, random_state=0):
    """Map the images in two dimensions of the embedding, with thumbnails.

    The embedding is projected on its first two principal components; each
    image is a dot coloured by its cluster (the nearest centre), the centres
    are crosses, and a spread-out subset of the images is drawn as thumbnails
    framed in their cluster's colour.

    Parameters
    ----------
    estimator : DeepConvEmbeddingClustering or Pipeline
        A fitted estimator, or a fitted pipeline that ends with one (such
        as :class:`~skdcec.PretrainedFeatures` and the clusterer), whose
        front end takes 3-D or 4-D images of any size.
    images : array-like of shape (n_samples, n_features), (n_samples, height, width) \
            or (n_samples, height, width, channels)
        Images laid out as in ``fit``.
    embedding : array-like of shape (n_samples, embedding_dim), default=None
        ``estimator.transform(images)``, when already computed.
    n_thumbnails : int, default=60
        Most thumbnails to draw; 0 draws dots only.
    random_state : int, default=0
        Seed of the choice of thumbnails.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The map.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")  # draw off-screen, without a window
    >>> import matplotlib.pyplot as plt
    >>> from sklearn.datasets import load_digits
    >>> from skdcec import DeepConvEmbeddingClustering
    >>> from skdcec.plotting import plot_embedding
    >>> X = load_digits().images[:100]
    >>> est = DeepConvEmbeddingClustering(3, pretrain_epochs=2, max_iter=10,
    ...                                   random_state=0).fit(X)
    >>> fig = plot_embedding(est, X, n_thumbnails=10)
    >>> fig.axes[0].get_xlabel()
    'principal component 1'
    >>> plt.close(fig)
    """
    plt = _pyplot()
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    check_is_fitted(estimator)
    stack = _image_stack(estimator, images)
    embedding = _checked_embedding(estimator, stack, embedding)
    centers = np.asarray(_clusterer(estimator).cluster_centers_, dtype=np.float64)
    labels, _ = _nearest_centers(embedding, centers)
    n_clusters = len(centers)

    mean = embedding.mean(axis=0)
    _, singular_values, components = np.linalg.svd(embedding - mean, full_matrices=False)
    components = components[:2]
    # Fix the signs, so that the map does not flip between runs.
    components *= np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])[:, None]
    points = (embedding - mean) @ components.T
    center_points = (centers - mean) @ components.T
    if points.shape[1] == 1:
        points = np.column_stack([points, np.zeros(len(points))])
        center_points = np.column_stack([center_points, np.zeros(len(center_points))])
    variance = np.square(singular_values)
    explained = variance[:2].sum() / variance.sum() if variance.sum() > 0 else 1.0

    palette = plt.get_cmap("tab10" if n_clusters <= 10 else "tab20" if n_clusters <= 20 else "turbo")
    if n_clusters <= 20:
        colors = [palette(i) for i in range(n_clusters)]
    else:
        colors = [palette(i / (n_clusters - 1)) for i in range(n_clusters)]
    colors = np.array(colors)

    fig, ax = plt.subplots(figsize=(10, 7.5), layout="constrained")
    ax.scatter(points[:, 0], points[:, 1], c=colors[labels], s=10, alpha=0.6, linewidths=0)

    height, width = stack.shape[1:3]
    zoom = THUMBNAIL_SIZE / max(height, width)
    for index in _spread_out(points, n_thumbnails, random_state):
        image = _displayable(stack[index : index + 1])[0]
        options = _imshow_options(image)
        thumbnail = OffsetImage(
            image,
            zoom=zoom,
            cmap=options["cmap"],
            norm=Normalize(0.0, 1.0),
            interpolation=options["interpolation"],
        )
        box = AnnotationBbox(
            thumbnail,
            points[index],
            frameon=True,
            pad=0.1,
            bboxprops={"edgecolor": colors[labels[index]], "linewidth": 1.5},
        )
        ax.add_artist(box)

    ax.scatter(
        center_points[:, 0], center_points[:, 1], c=colors, marker="X", s=160, edgecolors="black", zorder=3
    )
    for i, (x, y) in enumerate(center_points):
        ax.annotate(
            str(i), (x, y), xytext=(6, 6), textcoords="offset points", fontsize=11, weight="bold", zorder=4
        )

    sizes = np.bincount(labels, minlength=n_clusters)
    if n_clusters <= 20:
        handles = [
            Line2D([], [], marker="o", linestyle="", color=colors[i], label=f"{i} ({sizes[i]})")
            for i in range(n_clusters)
        ]
        ax.legend(
            handles=handles, title="cluster (size)", loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8
        )
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.set_title(
        f"Embedding of {len(stack)} images: the first two principal components of the "
        f"{_clusterer(estimator).embedding_dim}-d embedding ({explained:.0%} of its variance)",
        fontsize=10,
    )
    return fig


def _spread_out(points, n_chosen, random_state):
    """Indices of up to ``n_chosen`` points, drawn at random, that keep apart from each other."""
    if n_chosen <= 0 or len(points) == 0:
        return []
    low, high = points.min(axis=0), points.max(axis=0)
    scaled = (points - low) / np.where(high > low, high - low, 1.0)
    rng = np.random.default_rng(random_state)
    chosen = []
    for index in rng.permutation(len(points))[:THUMBNAIL_CANDIDATES]:
        if chosen and np.square(scaled[chosen] - scaled[index]).sum(axis=1).min() < THUMBNAIL_GAP**2:
            continue
        chosen.append(index)
        if len(chosen) == n_chosen:
            break
    return chosen


def plot_training_history(estimator):
    """Plot the losses and label changes recorded in ``history_``.

    Three panels: the reconstruction loss of every pretraining epoch; the
    reconstruction and clustering losses of the joint phase at every target
    update; and the fraction of labels that changed between updates, against
    the stopping threshold ``tol``.

    Parameters
    ----------
    estimator : DeepConvEmbeddingClustering
        A fitted estimator.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The curves.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")  # draw off-screen, without a window
    >>> import matplotlib.pyplot as plt
    >>> from sklearn.datasets import load_digits
    >>> from skdcec import DeepConvEmbeddingClustering
    >>> from skdcec.plotting import plot_training_history
    >>> X = load_digits().images[:100]
    >>> est = DeepConvEmbeddingClustering(3, pretrain_epochs=2, max_iter=10,
    ...                                   random_state=0).fit(X)
    >>> fig = plot_training_history(est)
    >>> [ax.get_title() for ax in fig.axes]
    ['Pretraining', 'Joint training', 'Label changes']
    >>> plt.close(fig)
    """
    plt = _pyplot()
    check_is_fitted(estimator)
    pretraining = estimator.history_.get("pretrain", [])
    clustering = estimator.history_.get("clustering", [])
    fig, (ax_pretrain, ax_joint, ax_change) = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")

    ax_pretrain.set_title("Pretraining")
    if pretraining:
        epochs = [record["epoch"] for record in pretraining]
        losses = [record["reconstruction_loss"] for record in pretraining]
        ax_pretrain.plot(epochs, losses, marker="o" if len(epochs) <= 30 else None, markersize=3)
        ax_pretrain.set_yscale("log")
        ax_pretrain.set_xlabel("epoch")
        ax_pretrain.set_ylabel("reconstruction loss (MSE)")
    else:
        _no_data(ax_pretrain, "no pretraining epochs")

    ax_joint.set_title("Joint training")
    trained = [record for record in clustering if record.get("reconstruction_loss") is not None]
    if trained:
        iterations = [record["iteration"] for record in trained]
        few = len(iterations) <= 30
        for key, label in (("reconstruction_loss", "reconstruction"), ("clustering_loss", "clustering (KL)")):
            values = [np.nan if record.get(key) is None else record[key] for record in trained]
            ax_joint.plot(iterations, values, marker="o" if few else None, markersize=3, label=label)
        ax_joint.set_yscale("log")
        ax_joint.set_xlabel("iteration (mini-batch)")
        ax_joint.set_ylabel("mean loss since the last update")
        ax_joint.legend(fontsize=8)
    else:
        _no_data(ax_joint, "no joint training")

    ax_change.set_title("Label changes")
    changes = [record for record in clustering if record.get("label_change_fraction") is not None]
    if changes:
        iterations = [record["iteration"] for record in changes]
        values = [record["label_change_fraction"] for record in changes]
        ax_change.plot(
            iterations, values, marker="o" if len(values) <= 30 else None, markersize=3, label="changed"
        )
        ax_change.axhline(estimator.tol, color="gray", linestyle="--", label=f"tol = {estimator.tol:g}")
        ax_change.set_ylim(bottom=0)
        ax_change.set_xlabel("iteration (mini-batch)")
        ax_change.set_ylabel("fraction of labels changed")
        ax_change.legend(fontsize=8)
    else:
        _no_data(ax_change, "fewer than two target updates")

    fig.suptitle(
        f"Training: {len(pretraining)} pretraining epochs, {estimator.n_iter_} joint iterations", fontsize=10
    )
    return fig


def _no_data(ax, message):
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="gray")


def plot_k_selection(
    n_clusters,
    silhouette,
    calinski_harabasz,
    *,
    shared_silhouette=None,
    shared_calinski_harabasz=None,
    shared_label="in a shared space",
    best=None,
):
    """Plot silhouette and Calinski-Harabasz scores against the number of clusters.

    Scores measured in each model's own embedding are inflated by the
    clustering loss, which compacts that space; scores in a space shared by
    all models (such as a PCA of the pixels) can be drawn beside them.

    Parameters
    ----------
    n_clusters : sequence of int
        The numbers of clusters compared.
    silhouette : sequence of float or None
        Silhouette of each model in its embedding; ``None`` where undefined.
    calinski_harabasz : sequence of float or None
        Calinski-Harabasz index of each model in its embedding.
    shared_silhouette : sequence of float or None, default=None
        Silhouette of each model's clusters in the shared space.
    shared_calinski_harabasz : sequence of float or None, default=None
        Calinski-Harabasz index of each model's clusters in the shared space.
    shared_label : str, default="in a shared space"
        Legend of the scores in the shared space, e.g. which space it is.
    best : int, default=None
        The chosen number of clusters, marked with a vertical line.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Two panels: silhouette and Calinski-Harabasz against k.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")  # draw off-screen, without a window
    >>> import matplotlib.pyplot as plt
    >>> from sklearn.datasets import load_digits
    >>> from skdcec import DeepConvEmbeddingClustering
    >>> from skdcec.metrics import embedding_calinski_harabasz_score
    >>> from skdcec.plotting import plot_k_selection
    >>> X = load_digits().images[:100]
    >>> ks, silhouettes, indices = [2, 3], [], []
    >>> for k in ks:
    ...     est = DeepConvEmbeddingClustering(k, pretrain_epochs=2, max_iter=10,
    ...                                       random_state=0).fit(X)
    ...     silhouettes.append(est.score(X))
    ...     indices.append(embedding_calinski_harabasz_score(est, X))
    >>> fig = plot_k_selection(ks, silhouettes, indices, best=3)
    >>> [ax.get_ylabel() for ax in fig.axes]
    ['silhouette', 'Calinski-Harabasz index']
    >>> plt.close(fig)
    """
    plt = _pyplot()
    ks = np.asarray(n_clusters)
    series = {
        "silhouette": silhouette,
        "calinski_harabasz": calinski_harabasz,
        "shared_silhouette": shared_silhouette,
        "shared_calinski_harabasz": shared_calinski_harabasz,
    }
    values = {}
    for name, scores in series.items():
        if scores is None:
            continue
        if len(scores) != len(ks):
            raise ValueError(
                f"{name} has {len(scores)} values for {len(ks)} values of n_clusters; pass one per k."
            )
        values[name] = np.array([np.nan if score is None else score for score in scores], dtype=np.float64)

    fig, (ax_silhouette, ax_ch) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    panels = (
        (ax_silhouette, "silhouette", "silhouette", "Silhouette (higher is better)"),
        (ax_ch, "calinski_harabasz", "Calinski-Harabasz index", "Calinski-Harabasz (higher is better)"),
    )
    for ax, name, ylabel, title in panels:
        ax.plot(ks, values[name], "o-", label="in the embedding")
        if f"shared_{name}" in values:
            ax.plot(ks, values[f"shared_{name}"], "s--", label=shared_label)
        if best is not None:
            ax.axvline(best, color="gray", linestyle=":", label=f"chosen k = {best}")
        shown = np.concatenate([values[key] for key in (name, f"shared_{name}") if key in values])
        shown = shown[np.isfinite(shown)]
        if name == "calinski_harabasz" and len(shown) and shown.min() > 0 and shown.max() > 10 * shown.min():
            ax.set_yscale("log")
        ax.set_xticks(ks)
        ax.set_xlabel("number of clusters k")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    return fig
