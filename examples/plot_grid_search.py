"""
=================================================================
Searching n_clusters with GridSearchCV, pretraining once per fold
=================================================================

:class:`~skdcec.DeepConvEmbeddingClustering` is a scikit-learn estimator, so
it sits in a :class:`~sklearn.pipeline.Pipeline` and
:class:`~sklearn.model_selection.GridSearchCV` can tune it. Its default
``score`` is the mean silhouette of the clusters in the learned embedding, so
the search needs no labels.

Pretraining the autoencoder is most of the cost of a fit and does not depend
on ``n_clusters``. With ``memory=`` the pretrained autoencoder is cached, and
every candidate of a fold reuses it: the search below pretrains once per fold
and once more for the final refit, instead of once per fit.
"""

# %%
# The pipeline
# ------------
# The digits come as 64 pixel columns; a scaler maps each to [0, 1] and DCEC
# reads every row as an 8x8 image. The settings are short so that the
# example runs in well under a minute.
import glob
import os
import tempfile
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler

from skdcec import DeepConvEmbeddingClustering
from skdcec.metrics import cluster_accuracy

digits = load_digits()
X, y = digits.data[:600], digits.target[:600]

cache = tempfile.TemporaryDirectory()
pipeline = Pipeline(
    [
        ("scale", MinMaxScaler()),
        (
            "dcec",
            DeepConvEmbeddingClustering(
                image_shape=(8, 8),
                gamma=1.0,
                pretrain_epochs=30,
                max_iter=105,
                update_interval=21,
                batch_size=128,
                n_init=5,
                memory=cache.name,
                # A fixed seed: with random_state=None every fit would draw
                # a new one and the cache would never be reused.
                random_state=0,
            ),
        ),
    ]
)

# %%
# The search
# ----------
# Three values of k on three folds: nine fits, then a refit of the best k on
# all the images.
search = GridSearchCV(
    pipeline,
    {"dcec__n_clusters": [6, 10, 14]},
    cv=KFold(3, shuffle=True, random_state=0),
)
with warnings.catch_warnings():
    # Short runs stop at max_iter rather than at tol; fit warns about it.
    warnings.simplefilter("ignore", ConvergenceWarning)
    search.fit(X)

for k, score, spread in zip(
    search.cv_results_["param_dcec__n_clusters"],
    search.cv_results_["mean_test_score"],
    search.cv_results_["std_test_score"],
):
    print(f"k={k:2d}: silhouette in the embedding {score:.3f} +/- {spread:.3f}")
print(f"best: {search.best_params_}")

# %%
# How many pretrainings?
# ----------------------
# Each entry of the cache is one pretraining: one per fold (each fold trains
# on different images) and one for the refit on all of them.
pretrainings = len(glob.glob(os.path.join(cache.name, "**", "output.pkl"), recursive=True))
n_fits = len(search.cv_results_["params"]) * search.n_splits_ + 1
print(f"{n_fits} fits, {pretrainings} pretrainings")

# %%
# The scores
# ----------
# The silhouette is measured in each candidate's own embedding, which its
# clustering loss has compacted: it is inflated, and each k is scored in a
# different space (see :ref:`choosing_k`). With these short settings the search
# prefers the smallest k, while the digits are ten. Here labels are available,
# so the choice can be checked against them; without labels, score the
# candidates in a shared space too, as in
# :ref:`sphx_glr_auto_examples_plot_choosing_k.py`.
fig, ax = plt.subplots(figsize=(5, 3.5), layout="constrained")
ax.errorbar(
    search.cv_results_["param_dcec__n_clusters"].astype(int),
    search.cv_results_["mean_test_score"],
    yerr=search.cv_results_["std_test_score"],
    marker="o",
    capsize=3,
)
ax.set_xlabel("n_clusters")
ax.set_ylabel("silhouette in the embedding\n(mean over held-out folds)")
ax.set_title("GridSearchCV over n_clusters")
plt.show()

best = search.best_estimator_
labels = best.predict(X)
print(
    f"refit with k={best['dcec'].n_clusters}: accuracy against the digits {cluster_accuracy(y, labels):.3f}"
)
print(f"cluster sizes: {np.bincount(labels).tolist()}")

cache.cleanup()
