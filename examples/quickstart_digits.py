"""Cluster scikit-learn's handwritten digits with DCEC and compare with KMeans.

Runs offline on data that ships with scikit-learn; prints NMI and ACC of
DCEC (default parameters) and of KMeans on the same pixels.
"""

import time

from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.metrics import normalized_mutual_info_score

from skdcec import DeepConvEmbeddingClustering
from skdcec.metrics import cluster_accuracy

digits = load_digits()
X, y = digits.images, digits.target  # 1,797 grayscale 8x8 images

start = time.perf_counter()
dcec = DeepConvEmbeddingClustering(n_clusters=10, random_state=0).fit(X)
dcec_seconds = time.perf_counter() - start

start = time.perf_counter()
kmeans = KMeans(n_clusters=10, n_init=20, random_state=0).fit(X.reshape(len(X), -1))
kmeans_seconds = time.perf_counter() - start

print(f"{'method':<8} {'NMI':>6} {'ACC':>6} {'seconds':>8}")
for name, labels, seconds in [("DCEC", dcec.labels_, dcec_seconds), ("KMeans", kmeans.labels_, kmeans_seconds)]:
    nmi = normalized_mutual_info_score(y, labels)
    acc = cluster_accuracy(y, labels)
    print(f"{name:<8} {nmi:6.3f} {acc:6.3f} {seconds:8.1f}")
