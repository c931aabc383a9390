"""Deep convolutional embedding clustering (DCEC) for image collections."""

from skdcec._estimator import DeepConvEmbeddingClustering
from skdcec._persistence import load
from skdcec.features import PretrainedFeatures
from skdcec.images import load_images

__version__ = "0.1.0"

__all__ = ["DeepConvEmbeddingClustering", "PretrainedFeatures", "load", "load_images", "__version__"]
