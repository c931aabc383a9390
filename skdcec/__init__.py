"""Deep convolutional embedding clustering (DCEC) for image collections."""

from skdcec._estimator import DeepConvEmbeddingClustering

__version__ = "0.1.0"

__all__ = ["DeepConvEmbeddingClustering", "__version__"]
