"""
==========================================================
Choosing k with silhouette and Calinski-Harabasz curves
==========================================================

Without labels, the number of clusters is chosen by fitting several values of
k and comparing internal scores, as Castellano & Vessio do for paintings with
the silhouette and the Calinski-Harabasz index. This example draws both
curves for a subset of the digits and shows why the scores measured in a DCEC
embedding are inflated: the clustering loss compacts the very space they are
measured in. Scores of the same clusterings in one shared space, a PCA of the
pixels, are drawn beside them.
"""

# %%
# One pretraining for every k
# ---------------------------
# Pretraining does not depend on k. With a fixed ``random_state`` and a
# ``memory=`` cache, the first fit pretrains the autoencoder and every other
# fit loads it, so each further k costs only its joint phase.
import tempfile
import warnings

import matplotlib.pyplot as plt
import numpy as np
from joblib import Memory
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import calinski_harabasz_score, silhouette_score

from skdcec import DeepConvEmbeddingClustering
from skdcec.metrics import embedding_calinski_harabasz_score
from skdcec.plotting import plot_k_selection

X = load_digits().images[:800]
cache = tempfile.TemporaryDirectory()
memory = Memory(cache.name, verbose=0)
# gamma=1 weighs the clustering loss ten times more than the default, as the
# painting replication does; it compacts the embedding within the short joint
# phase this example can afford (210 mini-batches).
settings = {
    "gamma": 1.0,
    "pretrain_epochs": 40,
    "max_iter": 210,
    "update_interval": 21,
    "batch_size": 128,
    "n_init": 5,
    "memory": memory,
    "random_state": 0,
}

# %%
# Score every k
# -------------
# For every k: the silhouette and Calinski-Harabasz index of the DCEC clusters
# in DCEC's own embedding, the same for the clusters in a 20-component PCA of
# the pixels (a space no model trained), and, for comparison, the silhouette
# of k-means on the pretrained embedding before any joint training
# (``max_iter=0``: CAE + k-means, which reuses the cached pretraining).
pixels = PCA(n_components=20, random_state=0).fit_transform(X.reshape(len(X), -1) / 16)

ks = [4, 6, 8, 10, 12]
scores = {name: [] for name in ("silhouette", "ch", "shared_silhouette", "shared_ch", "before")}
for k in ks:
    with warnings.catch_warnings():
        # Short runs stop at max_iter rather than at tol; fit warns about it.
        warnings.simplefilter("ignore", ConvergenceWarning)
        dcec = DeepConvEmbeddingClustering(k, **settings).fit(X)
    scores["silhouette"].append(dcec.score(X))
    scores["ch"].append(embedding_calinski_harabasz_score(dcec, X))
    scores["shared_silhouette"].append(silhouette_score(pixels, dcec.labels_))
    scores["shared_ch"].append(calinski_harabasz_score(pixels, dcec.labels_))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        before = DeepConvEmbeddingClustering(k, **{**settings, "max_iter": 0}).fit(X)
    scores["before"].append(before.score(X))

for i, k in enumerate(ks):
    print(
        f"k={k:2d}  silhouette: {scores['before'][i]:.2f} before joint training, "
        f"{scores['silhouette'][i]:.2f} after, {scores['shared_silhouette'][i]:.2f} in the pixel PCA"
    )

# %%
# The curves
# ----------
# In its own embedding, every DCEC clustering scores about twice the
# silhouette that k-means reached on the pretrained embedding before joint
# training: the joint phase pulled every image towards its centre, and the
# score measures that. Each k has trained its own embedding, so the curve
# compares spaces as much as values of k; in this run it prefers the smallest
# k. In the shared PCA space, where all clusterings are measured alike, the
# scores are much lower and the curve rises towards the ten digits instead.
fig = plot_k_selection(
    ks,
    scores["silhouette"],
    scores["ch"],
    shared_silhouette=scores["shared_silhouette"],
    shared_calinski_harabasz=scores["shared_ch"],
    shared_label="in a PCA of the pixels",
    best=ks[int(np.argmax(scores["shared_silhouette"]))],
)
ax = fig.axes[0]
ax.plot(ks, scores["before"], "^:", label="CAE + k-means, in its embedding")
ax.legend(fontsize=8)
plt.show()

# %%
# The vertical line marks the k with the best silhouette in the shared space.
# Read these curves as evidence, not as a verdict: a PCA of the pixels has its
# own bias (it favours clusters that differ in brightness and layout, not
# necessarily the grouping you want), and the runs here are short. When some
# images are labelled, score against the labels.

cache.cleanup()
