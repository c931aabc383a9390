"""scikit-learn's own estimator checks, on the default parameters, none skipped."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skdcec import DeepConvEmbeddingClustering


@parametrize_with_checks([DeepConvEmbeddingClustering()])
def test_sklearn_compatible_estimator(estimator, check):
    """Every check scikit-learn runs on a clusterer-transformer passes."""
    check(estimator)
