"""The fitted state: one setter serves fit, load and unpickling; parameters stored as plain data."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from skdcec import DeepConvEmbeddingClustering, load
from skdcec._fitted import ATTRIBUTES, FittedStateMixin, storable_params

pytestmark = pytest.mark.usefixtures("one_thread")


def test_fit_load_and_unpickling_all_set_the_state_in_one_place(digits, quick_params, tmp_path, monkeypatch):
    setter = FittedStateMixin._set_fitted
    calls = []

    def counting(self, state):
        calls.append(type(state).__name__)
        return setter(self, state)

    monkeypatch.setattr(FittedStateMixin, "_set_fitted", counting)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = DeepConvEmbeddingClustering(3, random_state=0, **quick_params).fit(digits[0][:60])
    est.save(tmp_path / "model")
    restored = [load(tmp_path / "model"), pickle.loads(pickle.dumps(est))]
    assert calls == ["FittedState"] * 3
    for other in restored:
        assert {name for name in ATTRIBUTES.values() if hasattr(other, name)} == {
            name for name in ATTRIBUTES.values() if hasattr(est, name)
        }
        np.testing.assert_array_equal(other.labels_, est.labels_)


def test_parameters_are_stored_as_plain_data():
    params = DeepConvEmbeddingClustering(
        memory="/tmp/cache",
        device=torch.device("cpu"),
        random_state=np.random.RandomState(0),
        filters=(8, 16),
    ).get_params()
    stored = storable_params(params)
    assert stored["memory"] is None and stored["device"] == "cpu" and stored["random_state"] is None
    assert stored["filters"] == [8, 16]
    with pytest.raises(ValueError, match="cannot be saved"):
        storable_params({**params, "gamma": object()})
