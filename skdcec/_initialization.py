"""Where the cluster centres start, and where a dying one restarts: k-means, spectral clustering, 2-means."""

import numpy as np
import torch
from sklearn.cluster import KMeans, SpectralClustering
from sklearn.utils import check_random_state

# Neighbours per sample in the graph of the spectral initialisation
# (scikit-learn's default for SpectralClustering).
SPECTRAL_NEIGHBORS = 10


def initial_centers(embeddings, n_clusters, *, init, n_init, seed):
    """Initial cluster centres in the embedding: k-means, or the means of spectral clusters.

    Parameters
    ----------
    embeddings : ndarray of shape (n_samples, embedding_dim)
        The pretrained embeddings, float64.
    n_clusters : int
        Number of centres.
    init : {"k-means", "spectral"}
        The method.
    n_init : int
        Runs of k-means.
    seed : int
        Seeds k-means or spectral clustering.

    Returns
    -------
    torch.Tensor of shape (n_clusters, embedding_dim)
        float32 centres.
    """
    if init == "k-means" or n_clusters == 1:
        kmeans = KMeans(n_clusters, n_init=n_init, random_state=seed).fit(embeddings)
        return torch.as_tensor(kmeans.cluster_centers_, dtype=torch.float32)
    spectral = SpectralClustering(
        n_clusters,
        affinity="nearest_neighbors",
        n_neighbors=min(SPECTRAL_NEIGHBORS, len(embeddings) - 1),
        assign_labels="cluster_qr",
        random_state=seed,
    )
    labels = spectral.fit_predict(embeddings)
    sizes = np.bincount(labels, minlength=n_clusters)
    centers = np.zeros((n_clusters, embeddings.shape[1]))
    np.add.at(centers, labels, embeddings)
    # A spectral cluster that received no sample is seeded at a sample drawn
    # at random, so that every centre lies in the data.
    empty = np.flatnonzero(sizes == 0)
    drawn = check_random_state(seed).choice(len(embeddings), len(empty), replace=False)
    centers[empty] = embeddings[drawn]
    sizes[empty] = 1
    return torch.as_tensor(centers / sizes[:, None], dtype=torch.float32)


def split_in_two(points, seed):
    """Split ``points`` by 2-means: each point's half (0 or 1) and the two halves' means.

    The joint phase re-seeds a dying cluster inside the widest one with it.

    Parameters
    ----------
    points : ndarray of shape (n_points, embedding_dim)
        The widest cluster's embeddings.
    seed : int
        Seeds 2-means.

    Returns
    -------
    halves : ndarray of shape (n_points,)
    means : ndarray of shape (2, embedding_dim)
    """
    halves = KMeans(2, n_init=3, random_state=seed).fit(points)
    return halves.labels_, halves.cluster_centers_
