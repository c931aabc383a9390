"""Deep convolutional embedding clustering (DCEC) for image collections."""

from skdcec._estimator import DeepConvEmbeddingClustering
from skdcec._loading import load
from skdcec._version import __version__
from skdcec.images import load_images

__all__ = ["DeepConvEmbeddingClustering", "load", "load_images", "__version__"]
