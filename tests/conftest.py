"""Shared fixtures: small real image sets and a quick estimator configuration."""

import os

# scikit-learn's array-API check runs (instead of skipping) only with this set,
# and it must be set before SciPy is first imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

# Keep the suite fast and predictable on a 2-core machine.
torch.set_num_threads(min(2, torch.get_num_threads()))

QUICK = dict(pretrain_epochs=10, max_iter=40, update_interval=10, batch_size=64, n_init=2, device="cpu")


@pytest.fixture(scope="session")
def digits():
    """The 8x8 digits of scikit-learn, flattened, with their labels."""
    data = load_digits()
    return data.data, data.target


@pytest.fixture
def quick_params():
    """Parameters that fit a small data set in well under a second."""
    return dict(QUICK)


@pytest.fixture
def rgb_images():
    """Small uint8 RGB images cut from scikit-learn's sample photos."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(0)
    crops = []
    for _ in range(24):
        photo = photos[rng.integers(len(photos))]
        top = rng.integers(photo.shape[0] - 12)
        left = rng.integers(photo.shape[1] - 10)
        crops.append(photo[top : top + 12, left : left + 10])
    return np.stack(crops)
