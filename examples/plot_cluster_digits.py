"""
=========================================
Clustering handwritten digits with DCEC
=========================================

Cluster scikit-learn's 1,797 handwritten digits (8x8 grayscale images) without
their labels, then look at the result the way one looks at an unlabelled
collection: the images nearest to each cluster centre, the centres decoded
back into images, and a map of the learned embedding. The labels are used only
at the end, to score the clusters.
"""

# %%
# Fit
# ---
# The images go in as a ``(n, 8, 8)`` array. The settings are much shorter
# than the defaults of the paper (200 pretraining epochs, up to 20,000 joint
# mini-batches) so that the example runs in well under a minute.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.metrics import normalized_mutual_info_score

from skdcec import DeepConvEmbeddingClustering
from skdcec.metrics import cluster_accuracy
from skdcec.plotting import (
    plot_cluster_montage,
    plot_embedding,
    plot_prototypes,
    plot_training_history,
)

digits = load_digits()
X, y = digits.images, digits.target

dcec = DeepConvEmbeddingClustering(
    n_clusters=10,
    pretrain_epochs=40,
    max_iter=560,
    update_interval=28,
    n_init=5,
    random_state=0,
)
dcec.fit(X)
print(f"{dcec.n_iter_} joint mini-batches; cluster sizes {np.bincount(dcec.labels_).tolist()}")

# %%
# Decoded prototypes
# ------------------
# Each cluster centre is a point of the 10-dimensional embedding; the decoder
# turns it into an image, the cluster's prototype.
plot_prototypes(dcec)
plt.show()

# %%
# Montages
# --------
# The images of a cluster nearest to its centre are its most typical members.
for cluster in range(3):
    plot_cluster_montage(dcec, X, cluster, n_images=16)
plt.show()

# %%
# The embedding
# -------------
# The first two principal components of the embedding, with a thumbnail of a
# few images; colours are clusters, crosses are centres.
plot_embedding(dcec, X, n_thumbnails=40)
plt.show()

# %%
# Training
# --------
# The reconstruction loss falls during pretraining; in the joint phase the
# fraction of labels that change between target updates drops towards ``tol``.
# With this short budget the run stops at ``max_iter`` rather than at ``tol``,
# which ``fit`` reports with a ``ConvergenceWarning``.
plot_training_history(dcec)
plt.show()

# %%
# Score against the labels
# ------------------------
# Cluster numbers are arbitrary, so accuracy matches clusters to digits with
# the Hungarian method first. KMeans on the raw pixels is the baseline. The
# training here is a small fraction of the paper's budget;
# ``examples/quickstart_digits.py`` (the README's main job) runs the defaults.
kmeans = KMeans(n_clusters=10, n_init=5, random_state=0).fit(X.reshape(len(X), -1))
for name, labels in [("DCEC", dcec.labels_), ("KMeans on pixels", kmeans.labels_)]:
    print(
        f"{name:<17} NMI {normalized_mutual_info_score(y, labels):.3f}"
        f"  accuracy {cluster_accuracy(y, labels):.3f}"
    )
