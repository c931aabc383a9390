"""Deep convolutional embedding clustering (DCEC) for image collections."""

from skdcec._estimator import DeepConvEmbeddingClustering
from skdcec._loading import load
from skdcec._version import __version__
from skdcec.features import PretrainedFeatures
from skdcec.images import load_images
from skdcec.model_selection import select_n_clusters

__all__ = [
    "DeepConvEmbeddingClustering",
    "PretrainedFeatures",
    "load",
    "load_images",
    "select_n_clusters",
    "__version__",
]
