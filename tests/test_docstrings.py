"""Docstrings match the code: every parameter and fitted attribute is documented, in order."""

import inspect
import warnings

import pytest
from numpydoc.docscrape import ClassDoc, FunctionDoc
from sklearn.exceptions import ConvergenceWarning

import skdcec
import skdcec.cli
import skdcec.images
import skdcec.features
import skdcec.metrics
import skdcec.model_selection
import skdcec.plotting
import skdcec.results_page
from skdcec import DeepConvEmbeddingClustering, PretrainedFeatures


def _public_functions(module):
    """The public functions defined in ``module`` (not imported into it)."""
    return [
        function
        for name, function in vars(module).items()
        if inspect.isfunction(function)
        and not name.startswith("_")
        and function.__module__ == module.__name__
    ]


def _public_methods(cls):
    """The public methods ``cls`` defines itself; inherited ones are documented upstream."""
    return [
        function
        for name, function in vars(cls).items()
        if inspect.isfunction(function) and not name.startswith("_")
    ]


PUBLIC_FUNCTIONS = [
    *(getattr(skdcec, name) for name in skdcec.__all__ if inspect.isfunction(getattr(skdcec, name))),
    *_public_functions(skdcec.metrics),
    *_public_functions(skdcec.plotting),
    *_public_functions(skdcec.images),
    *_public_functions(skdcec.results_page),
    *_public_functions(skdcec.model_selection),
    *_public_functions(skdcec.features),
    *_public_functions(skdcec.cli),
    *_public_methods(DeepConvEmbeddingClustering),
    *_public_methods(PretrainedFeatures),
]
PUBLIC_NAMES = [
    DeepConvEmbeddingClustering,
    PretrainedFeatures,
    skdcec.model_selection.NClustersSelection,
    *PUBLIC_FUNCTIONS,
]


def _documented_names(section):
    """Names in a numpydoc section; ``a, b : type`` documents both ``a`` and ``b``."""
    return [name.strip() for entry in section for name in entry.name.split(",")]


def _signature_names(function):
    """Parameter names in signature order, without ``self``, ``*args`` or ``**kwargs``."""
    return [
        parameter.name
        for parameter in inspect.signature(function).parameters.values()
        if parameter.name != "self"
        and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    ]


def _doc(obj):
    return ClassDoc(obj) if inspect.isclass(obj) else FunctionDoc(obj)


def _id(obj):
    return obj.__qualname__


def test_the_public_names_are_all_covered():
    """The lists below cover the estimator, load, load_images and the public modules."""
    names = {obj.__qualname__ for obj in PUBLIC_NAMES}
    assert {"DeepConvEmbeddingClustering", "load", "load_images", "cluster_accuracy", "main"} <= names
    methods = ("fit", "predict", "transform", "save")
    assert {f"DeepConvEmbeddingClustering.{method}" for method in methods} <= names
    assert set(skdcec.plotting.__all__) <= names
    assert set(skdcec.results_page.__all__) <= names


@pytest.mark.parametrize("cls", [DeepConvEmbeddingClustering, PretrainedFeatures], ids=_id)
def test_estimator_parameters_are_documented_in_signature_order(cls):
    """The class docstring lists exactly the parameters of __init__, in the same order."""
    documented = _documented_names(ClassDoc(cls)["Parameters"])
    assert documented == _signature_names(cls.__init__)


@pytest.mark.parametrize("function", PUBLIC_FUNCTIONS, ids=_id)
def test_function_parameters_are_documented_in_signature_order(function):
    """Every public function and method documents exactly its parameters, in order."""
    documented = _documented_names(FunctionDoc(function)["Parameters"])
    assert documented == _signature_names(function)


@pytest.mark.parametrize("obj", PUBLIC_NAMES, ids=_id)
def test_public_names_have_a_summary_returns_and_examples(obj):
    """Every public name has a summary line and a runnable Examples section."""
    doc = _doc(obj)
    assert doc["Summary"], "no summary line"
    assert any(line.lstrip().startswith(">>>") for line in doc["Examples"]), "no doctest in Examples"
    if not inspect.isclass(obj):
        assert doc["Returns"] or doc["Yields"], "no Returns section"


@pytest.fixture(scope="module")
def fitted_estimator():
    """An estimator fitted on a DataFrame with string columns, so that feature_names_in_ is set too."""
    pd = pytest.importorskip("pandas")
    from sklearn.datasets import load_digits

    X = load_digits().data[:60]
    frame = pd.DataFrame(X, columns=[f"pixel_{i}" for i in range(X.shape[1])])
    estimator = DeepConvEmbeddingClustering(
        3, pretrain_epochs=1, max_iter=2, n_init=1, device="cpu", random_state=0
    )
    with warnings.catch_warnings():
        # Whether so short a run converges does not matter here.
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(frame)
    return estimator


def test_fitted_attributes_are_documented(fitted_estimator):
    """The Attributes section lists exactly the public attributes that fit sets."""
    fitted = {name for name in vars(fitted_estimator) if name.endswith("_") and not name.startswith("_")}
    # Read-only views of the fitted state, such as input_dtype_, count too.
    fitted |= {
        name
        for cls in DeepConvEmbeddingClustering.__mro__
        if cls.__module__.startswith("skdcec")
        for name, value in vars(cls).items()
        if isinstance(value, property) and name.endswith("_") and not name.startswith("_")
    }
    documented = set(_documented_names(ClassDoc(DeepConvEmbeddingClustering)["Attributes"]))
    assert fitted, "fit set no attribute ending in '_'"
    assert fitted - documented == set(), "fitted but not documented"
    assert documented - fitted == set(), "documented but not set by fit"


def test_fitted_attributes_of_the_feature_front_end_are_documented():
    """PretrainedFeatures documents exactly the public attributes that fit sets."""
    import numpy as np
    import torch

    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(np.zeros((3, 4)), columns=["a", "b", "c", "d"])
    fitted = PretrainedFeatures(torch.nn.Conv2d(3, 2, 3), input_size=8).fit(frame)
    names = {name for name in vars(fitted) if name.endswith("_") and not name.startswith("_")}
    assert names == set(_documented_names(ClassDoc(PretrainedFeatures)["Attributes"]))
