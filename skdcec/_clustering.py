"""DEC's clustering layer: Student's t soft assignment and its sharpened target."""

import torch
from torch import nn
from torch.nn import functional as F


def log_soft_assignment(z, centers, alpha=1.0):
    """Logarithm of the Student's t soft assignment, computed stably.

    ``log q_ij = -(alpha + 1) / 2 * log1p(||z_i - mu_j||^2 / alpha)`` minus its
    log-sum-exp over ``j``: no ``log`` of a value that underflowed to zero.

    Parameters
    ----------
    z : torch.Tensor of shape (n_samples, embedding_dim)
        Embedded samples.
    centers : torch.Tensor of shape (n_clusters, embedding_dim)
        Cluster centres.
    alpha : float, default=1.0
        Degrees of freedom of the Student's t kernel.

    Returns
    -------
    torch.Tensor of shape (n_samples, n_clusters)
    """
    # The explicit difference is exact, batch-independent and has a finite
    # gradient at zero distance, unlike ``cdist``. Squares are taken in float64
    # (where the device has it) so that huge float32 distances do not overflow.
    wide = z.dtype if z.device.type == "mps" else torch.promote_types(z.dtype, torch.float64)
    difference = z.to(wide).unsqueeze(1) - centers.to(wide).unsqueeze(0)
    logits = -(alpha + 1.0) / 2.0 * torch.log1p(difference.square().sum(dim=2) / alpha)
    return (logits - torch.logsumexp(logits, dim=1, keepdim=True)).to(z.dtype)


# Elements of the largest temporary (the rows x clusters x embedding_dim
# differences, in float64) when the soft assignment of many samples is computed.
ASSIGNMENT_CHUNK_ELEMENTS = 2**22


@torch.no_grad()
def log_soft_assignment_in_chunks(z, centers, alpha=1.0):
    """Float64 log soft assignment of many samples, a bounded chunk of rows at a time.

    Used wherever all samples are assigned at once (target updates,
    ``predict``, ``predict_proba``): the temporary holds at most
    ``ASSIGNMENT_CHUNK_ELEMENTS`` differences whatever the number of samples,
    and every row is computed on its own in float64, so that its value does
    not depend on the other rows or on how they were chunked.

    Parameters
    ----------
    z : torch.Tensor of shape (n_samples, embedding_dim)
        Embedded samples.
    centers : torch.Tensor of shape (n_clusters, embedding_dim)
        Cluster centres.
    alpha : float, default=1.0
        Degrees of freedom of the Student's t kernel.

    Returns
    -------
    torch.Tensor of shape (n_samples, n_clusters)
        Float64 (float32 on MPS, which has no float64), on ``z``'s device.
    """
    wide = torch.float32 if z.device.type == "mps" else torch.float64
    centers = centers.detach().to(device=z.device, dtype=wide)
    rows = max(1, ASSIGNMENT_CHUNK_ELEMENTS // centers.numel())
    out = torch.empty((z.shape[0], centers.shape[0]), dtype=wide, device=z.device)
    for start in range(0, z.shape[0], rows):
        out[start : start + rows] = log_soft_assignment(z[start : start + rows].to(wide), centers, alpha)
    return out


def soft_assignment(z, centers, alpha=1.0):
    """Student's t soft assignment ``q`` of samples to centres (DEC, eq. 1).

    ``q_ij = (1 + ||z_i - mu_j||^2 / alpha)^(-(alpha + 1) / 2)``, normalised so
    that every row sums to one.

    Parameters
    ----------
    z : torch.Tensor of shape (n_samples, embedding_dim)
        Embedded samples.
    centers : torch.Tensor of shape (n_clusters, embedding_dim)
        Cluster centres.
    alpha : float, default=1.0
        Degrees of freedom of the Student's t kernel.

    Returns
    -------
    torch.Tensor of shape (n_samples, n_clusters)

    Examples
    --------
    >>> import torch
    >>> q = soft_assignment(torch.zeros(1, 2), torch.tensor([[0.0, 0.0], [1.0, 0.0]]))
    >>> q
    tensor([[0.6667, 0.3333]])
    """
    return log_soft_assignment(z, centers, alpha).exp()


def target_distribution(q):
    """DEC's auxiliary target ``p``: ``q`` squared and divided by cluster frequency.

    ``p_ij = (q_ij^2 / f_j) / sum_j' (q_ij'^2 / f_j')`` with ``f_j = sum_i q_ij``.
    Squaring sharpens confident assignments; dividing by ``f_j`` keeps large
    clusters from swallowing the others.

    Parameters
    ----------
    q : torch.Tensor of shape (n_samples, n_clusters)
        Soft assignments of **all** samples.

    Returns
    -------
    torch.Tensor of shape (n_samples, n_clusters)
        Rows sum to one.

    Examples
    --------
    >>> import torch
    >>> target_distribution(torch.tensor([[0.5, 0.5], [0.9, 0.1]]))
    tensor([[0.3000, 0.7000],
            [0.9720, 0.0280]])
    """
    # A cluster far from every sample has q underflow to 0 in its whole
    # column: its weights are then 0, not 0 / 0.
    frequency = q.sum(dim=0).clamp_min(torch.finfo(q.dtype).tiny)
    weight = q.square() / frequency
    return weight / weight.sum(dim=1, keepdim=True)


def clustering_loss(log_q, p):
    """``KL(P || Q)`` summed over clusters and averaged over the batch.

    Parameters
    ----------
    log_q : torch.Tensor of shape (batch, n_clusters)
        Logarithm of the soft assignment.
    p : torch.Tensor of shape (batch, n_clusters)
        Target distribution for the same samples.

    Returns
    -------
    torch.Tensor
        Scalar loss.
    """
    return F.kl_div(log_q, p, reduction="batchmean")


class ClusteringLayer(nn.Module):
    """Trainable cluster centres that map embeddings to ``log q``.

    Parameters
    ----------
    centers : torch.Tensor of shape (n_clusters, embedding_dim)
        Initial centres, usually from k-means on the pretrained embeddings.
    alpha : float, default=1.0
        Degrees of freedom of the Student's t kernel.
    """

    def __init__(self, centers, alpha=1.0):
        super().__init__()
        self.centers = nn.Parameter(centers.detach().clone())
        self.alpha = alpha

    def forward(self, z):
        """Log soft assignment of embeddings ``z`` to the centres.

        Parameters
        ----------
        z : torch.Tensor of shape (batch, embedding_dim)
            Embeddings.

        Returns
        -------
        torch.Tensor of shape (batch, n_clusters)
        """
        return log_soft_assignment(z, self.centers, self.alpha)

    def log_assignment_of_all(self, z):
        """Float64 log soft assignment of all samples ``z``, without gradient.

        See :func:`log_soft_assignment_in_chunks`.

        Parameters
        ----------
        z : torch.Tensor of shape (n_samples, embedding_dim)
            Embeddings of every sample.

        Returns
        -------
        torch.Tensor of shape (n_samples, n_clusters)
        """
        return log_soft_assignment_in_chunks(z, self.centers, self.alpha)
