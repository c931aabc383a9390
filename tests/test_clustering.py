"""Closed-form checks of the Student's t soft assignment, the target and the KL loss."""

import numpy as np
import pytest
import torch

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
