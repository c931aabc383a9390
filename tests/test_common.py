"""scikit-learn's own estimator checks, on the default parameters, none skipped."""

import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

from skdcec import DeepConvEmbeddingClustering, PretrainedFeatures



class TinyBackbone(torch.nn.Sequential):
    """A small convolutional backbone, so that the checks run in seconds.

    Passed as a class: scikit-learn compares parameters by their pickled
    hash, and a module instance pickles differently at every call.
    """

    def __init__(self):
        super().__init__(torch.nn.Conv2d(3, 4, 3, stride=2), torch.nn.ReLU(), torch.nn.Conv2d(4, 3, 3))



@parametrize_with_checks([DeepConvEmbeddingClustering(), PretrainedFeatures(TinyBackbone, input_size=16)])
def test_sklearn_compatible_estimator(estimator, check):
    """Every check scikit-learn runs on the clusterer-transformer and the feature transformer passes."""
    check(estimator)
