"""The Student's t soft assignment, the target and the KL loss: closed forms and properties on any input."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from skdcec._clustering import (
    ClusteringLayer,
    clustering_loss,
    log_soft_assignment,
    soft_assignment,
    target_distribution,
)


def _reference_q(z, centers, alpha):
    d2 = ((z[:, None, :] - centers[None]) ** 2).sum(-1)
    kernel = (1 + d2 / alpha) ** (-(alpha + 1) / 2)
    return kernel / kernel.sum(1, keepdims=True)


@pytest.mark.parametrize("alpha", [1.0, 0.5, 3.0])
def test_soft_assignment_matches_closed_form(alpha):
    """q equals the Student's t formula of DEC for several degrees of freedom."""
    rng = np.random.default_rng(0)
    z, centers = rng.normal(size=(7, 3)), rng.normal(size=(4, 3))
    q = soft_assignment(torch.tensor(z), torch.tensor(centers), alpha).numpy()
    np.testing.assert_allclose(q, _reference_q(z, centers, alpha), rtol=1e-10)


def test_soft_assignment_by_hand():
    """With alpha=1 and squared distances 0 and 1 the kernel values are 1 and 1/2."""
    q = soft_assignment(torch.zeros(1, 2), torch.tensor([[0.0, 0.0], [1.0, 0.0]]))
    np.testing.assert_allclose(q.numpy(), [[2 / 3, 1 / 3]], rtol=1e-6)


def test_target_distribution_matches_closed_form():
    """p_ij = (q_ij^2 / f_j) / sum_j' (q_ij'^2 / f_j')."""
    q = np.array([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]])
    f = q.sum(0)
    weight = q**2 / f
    expected = weight / weight.sum(1, keepdims=True)
    np.testing.assert_allclose(target_distribution(torch.tensor(q)).numpy(), expected, rtol=1e-12)
    # Hand value for the first row: f = (1.6, 1.4), weights 0.25/1.6 and 0.25/1.4.
    first = np.array([0.25 / 1.6, 0.25 / 1.4])
    np.testing.assert_allclose(expected[0], first / first.sum())


def test_target_distribution_sharpens_confident_rows():
    """The target is more confident than q where q is already confident."""
    q = torch.tensor([[0.7, 0.3], [0.3, 0.7], [0.6, 0.4], [0.4, 0.6]], dtype=torch.float64)
    p = target_distribution(q)
    assert (p.max(1).values > q.max(1).values).all()


def test_log_soft_assignment_is_finite_when_q_underflows():
    """Far-away centres make q underflow to 0 in float32, yet log q stays finite and exact."""
    z = torch.zeros(1, 1)
    centers = torch.tensor([[0.0], [1e30]])
    log_q = log_soft_assignment(z, centers)
    assert torch.isfinite(log_q).all()
    assert soft_assignment(z, centers)[0, 1] == 0.0
    # The squared distance 1e60 overflows float32, yet log q_2 = -log(1 + 1e60) is exact.
    np.testing.assert_allclose(log_q[0, 1].item(), -np.log(1e60), rtol=1e-6)


def test_clustering_loss_reduction_is_sum_over_clusters_mean_over_batch():
    """KL(P||Q) is summed over clusters and averaged over the batch, with 0 log 0 = 0."""
    q = torch.tensor([[0.5, 0.5], [0.25, 0.75]], dtype=torch.float64)
    p = torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=torch.float64)
    expected = (1.0 * np.log(1 / 0.5) + (0.5 * np.log(0.5 / 0.25) + 0.5 * np.log(0.5 / 0.75))) / 2
    np.testing.assert_allclose(clustering_loss(q.log(), p).item(), expected, rtol=1e-12)


def test_clustering_layer_gradient_is_finite_at_a_centre():
    """An embedding sitting exactly on a centre still gets a finite gradient."""
    layer = ClusteringLayer(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    z = torch.zeros(1, 2, requires_grad=True)
    loss = clustering_loss(layer(z), torch.tensor([[0.9, 0.1]]))
    loss.backward()
    assert torch.isfinite(z.grad).all()
    assert torch.isfinite(layer.centers.grad).all()


# Properties, on any input ---------------------------------------------------------
#
# Inputs are float32, as the estimator's embeddings are, with coordinates up to
# 1e30 in magnitude: squared distances then reach 1e61, far beyond float32, and
# log_soft_assignment must take them in float64. (float64 coordinates beyond
# about 1e154 would overflow even there; embeddings never are float64.)

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)
FLOAT32_COORDINATES = st.floats(-float(np.float32(1e30)), float(np.float32(1e30)), width=32)


@st.composite
def embeddings_and_centers(draw, elements=FLOAT32_COORDINATES):
    """Samples and centres in a shared space, duplicates and one cluster included."""
    n_samples, n_clusters, dim = draw(st.integers(1, 8)), draw(st.integers(1, 5)), draw(st.integers(1, 3))
    z = draw(arrays(np.float32, (n_samples, dim), elements=elements))
    centers = draw(arrays(np.float32, (n_clusters, dim), elements=elements))
    alpha = draw(st.sampled_from([0.5, 1.0, 4.0]))
    return torch.from_numpy(z), torch.from_numpy(centers), alpha


@st.composite
def soft_assignments(draw):
    """Row-stochastic float64 matrices with zeros and near-zeros, some columns empty."""
    n_samples, n_clusters = draw(st.integers(1, 8)), draw(st.integers(1, 5))
    elements = st.one_of(st.just(0.0), st.floats(1e-300, 1.0), st.floats(0.0, 1.0))
    weights = draw(arrays(np.float64, (n_samples, n_clusters), elements=elements))
    weights[:, 0] += 1e-3  # no empty row
    return torch.from_numpy(weights / weights.sum(axis=1, keepdims=True))


def _entropy(p):
    return -torch.special.xlogy(p, p).sum(dim=1)


def _permutation(draw, n):
    return torch.as_tensor(draw(st.permutations(range(n))))


@PROPERTY_SETTINGS
@given(embeddings_and_centers())
def test_soft_assignment_rows_are_distributions(inputs):
    """q is finite, non-negative and sums to 1 per row, however far or close the points are."""
    z, centers, alpha = inputs
    log_q = log_soft_assignment(z, centers, alpha)
    q = soft_assignment(z, centers, alpha)
    assert torch.isfinite(log_q).all() and (log_q <= 1e-6).all()
    assert (q >= 0).all()
    torch.testing.assert_close(q.double().sum(dim=1), torch.ones(len(z), dtype=torch.float64), rtol=0, atol=1e-5)


@PROPERTY_SETTINGS
@given(embeddings_and_centers(), st.data())
def test_soft_assignment_permutes_with_samples_and_centres(inputs, data):
    """Reordering samples reorders the rows of q; reordering centres reorders its columns."""
    z, centers, alpha = inputs
    rows, columns = _permutation(data.draw, len(z)), _permutation(data.draw, len(centers))
    q = soft_assignment(z, centers, alpha)
    torch.testing.assert_close(soft_assignment(z[rows], centers, alpha), q[rows], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(soft_assignment(z, centers[columns], alpha), q[:, columns], rtol=1e-6, atol=1e-7)


@PROPERTY_SETTINGS
@given(soft_assignments(), st.data())
def test_target_distribution_is_a_distribution_that_permutes_along(q, data):
    """P is finite, non-negative, sums to 1 per row, and follows permutations of samples and clusters."""
    p = target_distribution(q)
    assert torch.isfinite(p).all() and (p >= 0).all()
    torch.testing.assert_close(p.sum(dim=1), torch.ones(len(q), dtype=torch.float64), rtol=0, atol=1e-12)
    rows, columns = _permutation(data.draw, q.shape[0]), _permutation(data.draw, q.shape[1])
    torch.testing.assert_close(target_distribution(q[rows]), p[rows], rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(target_distribution(q[:, columns]), p[:, columns], rtol=1e-12, atol=1e-15)


@PROPERTY_SETTINGS
@given(soft_assignments())
def test_target_sharpens_rows_when_clusters_are_balanced(rows):
    """With equal cluster frequencies, every row of P has no more entropy than its row of Q.

    P's row is then Q's row squared and renormalised, and the entropy of
    q^beta / sum(q^beta) does not increase with beta (its derivative is minus
    beta times a variance). Rows and all their cyclic shifts make the
    cluster frequencies equal.
    """
    q = torch.cat([rows.roll(shift, dims=1) for shift in range(rows.shape[1])])
    p = target_distribution(q)
    assert (_entropy(p) <= _entropy(q) + 1e-9).all()
    assert (p.max(dim=1).values >= q.max(dim=1).values - 1e-12).all()


@PROPERTY_SETTINGS
@given(soft_assignments())
def test_target_is_the_square_of_frequency_corrected_q(q):
    """Always, P's row has no more entropy than q_ij / sqrt(f_j) normalised, whose square it is.

    Dividing by the cluster frequency f_j first flattens rows that lean
    towards a large cluster; squaring then sharpens. So no bound against Q
    itself holds in general (see the next test), but this one does.
    """
    p = target_distribution(q)
    corrected = q / q.sum(dim=0).clamp_min(torch.finfo(q.dtype).tiny).sqrt()
    corrected = corrected / corrected.sum(dim=1, keepdim=True)
    assert (_entropy(p) <= _entropy(corrected) + 1e-9).all()


def test_target_can_flatten_rows_that_lean_towards_a_large_cluster():
    """P is not sharper than Q row by row, nor on average: frequency division can outweigh squaring."""
    q = torch.tensor([[0.0, 0.1, 0.9], [0.1, 0.0, 0.9]], dtype=torch.float64)
    p = target_distribution(q)
    np.testing.assert_allclose(p.numpy(), [[0, 2 / 11, 9 / 11], [2 / 11, 0, 9 / 11]])
    assert (_entropy(p) > _entropy(q)).all()


@PROPERTY_SETTINGS
@given(embeddings_and_centers())
def test_clustering_loss_and_its_gradient_are_finite_for_extreme_inputs(inputs):
    """KL(P || Q) and its gradients stay finite for huge distances, identical points and one cluster."""
    z, centers, alpha = inputs
    layer = ClusteringLayer(centers, alpha)
    z = z.clone().requires_grad_()
    log_q = layer(z)
    with torch.no_grad():
        p = target_distribution(log_q.exp().double()).float()
    loss = clustering_loss(log_q, p)
    loss.backward()
    assert torch.isfinite(loss) and loss >= -1e-6
    assert torch.isfinite(z.grad).all() and torch.isfinite(layer.centers.grad).all()
    if len(centers) == 1:
        assert loss.item() == 0.0


def test_target_ignores_a_cluster_that_is_far_from_every_sample():
    """A centre so far away that its q underflows to 0 gets P = 0, not NaN from 0 / 0."""
    z = torch.zeros(3, 1)
    q = soft_assignment(z, torch.tensor([[0.0], [1.0], [1e30]]))
    assert (q[:, 2] == 0).all()
    p = target_distribution(q)
    assert torch.isfinite(p).all() and (p[:, 2] == 0).all()
    torch.testing.assert_close(p.sum(dim=1), torch.ones(3))
