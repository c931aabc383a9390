"""DCEC's two training phases: autoencoder pretraining, then joint clustering."""

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from skdcec._augmentation import augment_batch
from skdcec._clustering import (
    clustering_loss,
    log_soft_assignment,
    target_distribution,
)
from skdcec._device import autocast, memory_format


DYING_FRACTION = 0.1
"""A cluster with less than this fraction of its initial size gets a new centre."""


class TrainingDivergedError(FloatingPointError):
    """The training loss stopped being finite."""


def _check_finite(value, where):
    if not torch.isfinite(torch.as_tensor(value)).all():
        raise TrainingDivergedError(
            f"The loss became NaN or infinite during {where}: training diverged. "
            "Lower learning_rate (e.g. divide it by 10) or check the input scale."
        )


def _batches(n_samples, batch_size, generator):
    """Shuffled index batches over one pass of the data, each sorted."""
    order = torch.randperm(n_samples, generator=generator)
    for start in range(0, n_samples, batch_size):
        yield order[start : start + batch_size].sort().values


def _local_batches(n_samples, batch_size, generator, parallel):
    """This process's part of every shuffled batch, with its share of the batch's loss.

    A single process trains on whole batches (share ``None``: the loss is
    used as it is). In a data-parallel run every process draws the same
    batches from identically seeded generators and trains on its part.
    """
    for indices in _batches(n_samples, batch_size, generator):
        if parallel is None:
            yield indices, None
            continue
        local, share = parallel.split_batch(indices)
        if local is not None:
            yield local, share


def pretrain(
    autoencoder,
    data,
    *,
    epochs,
    batch_size,
    learning_rate,
    generator,
    precision=None,
    augmentations=frozenset(),
    augment_generator=None,
    reconstruct_augmented=True,
    parallel=None,
    callback=None,
    plateau_window=None,
    plateau_improvement=0.0,
    plateau_min_epochs=0,
):
    """Train the autoencoder alone to reconstruct its input.

    Mean squared error over pixels and batch, Adam, shuffled mini-batches.
    With augmentations, the network sees a randomly transformed image and
    reconstructs that image (DEC-DA's code) or the clean one.

    Parameters
    ----------
    autoencoder : ConvAutoencoder
        The model, already on the data's device.
    data : ImageBatches
        The training images.
    epochs : int
        Passes over the data.
    batch_size : int
        Images per step.
    learning_rate : float
        Adam's step size.
    generator : torch.Generator
        CPU generator that shuffles the data.
    precision : torch.dtype or None, default=None
        Autocast dtype; ``None`` trains in float32.
    augmentations : frozenset of str, default=frozenset()
        Names of the augmentations applied to every batch (see
        :func:`skdcec._augmentation.augment_batch`).
    augment_generator : torch.Generator, default=None
        Generator on the data's device that draws the augmentations.
    reconstruct_augmented : bool, default=True
        With augmentations, whether the reconstruction target is the
        transformed image (True) or the clean one (False).
    parallel : DataParallel, default=None
        In a data-parallel run, this process's place in it: the process
        trains on its part of every batch and the gradients are averaged.
    callback : callable, default=None
        Called as ``callback("pretrain", record)`` after every epoch.
    plateau_window : int or None, default=None
        With an int, training stops before ``epochs`` once the mean
        reconstruction loss of the last ``plateau_window`` epochs is less
        than ``plateau_improvement`` (relative) below the mean of the
        ``plateau_window`` epochs before them. ``None`` trains all
        ``epochs``.
    plateau_improvement : float, default=0.0
        Relative improvement between the two windows under which training
        stops.
    plateau_min_epochs : int, default=0
        Epochs trained before the plateau rule applies: early in training an
        autoencoder can sit on a plateau (reconstructing little more than
        the mean image) before its loss falls again.

    Returns
    -------
    list of dict
        One record per epoch trained: ``epoch``, ``reconstruction_loss`` and
        ``seconds`` (the epoch's wall time).

    Raises
    ------
    TrainingDivergedError
        If the loss is no longer finite.
    """
    autoencoder.train()
    model = autoencoder if parallel is None else parallel.wrap(autoencoder)
    optimizer = torch.optim.Adam(autoencoder.parameters(), lr=learning_rate)
    history = []
    for epoch in range(epochs):
        started = time.perf_counter()
        # Accumulate on the device: one host synchronisation per epoch.
        total = torch.zeros((), device=data.device)
        for indices, share in _local_batches(len(data), batch_size, generator, parallel):
            images = data.take(indices)
            inputs = augment_batch(images, augmentations, augment_generator)
            with autocast(data.device, precision):
                _, reconstruction = model(inputs)
            loss = F.mse_loss(reconstruction.float(), inputs if reconstruct_augmented else images)
            total += loss.detach() * len(indices)
            if share is not None:
                loss = loss * share
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if parallel is not None:
            total = parallel.total(total)
        # .item() waits for the device, so the epoch's time is complete.
        record = {"epoch": epoch + 1, "reconstruction_loss": (total / len(data)).item()}
        record["seconds"] = time.perf_counter() - started
        _check_finite(record["reconstruction_loss"], f"pretraining epoch {epoch + 1}")
        history.append(record)
        if callback is not None:
            callback("pretrain", record)
        if epoch + 1 >= plateau_min_epochs and _reconstruction_plateaued(
            history, plateau_window, plateau_improvement
        ):
            break
    return history


def _reconstruction_plateaued(history, window, improvement):
    """Whether the last ``window`` epochs' mean loss is less than ``improvement`` below the window before.

    Means over windows, not single epochs: on a few hundred images an epoch is
    two or three mini-batches, and its loss is too noisy to compare alone.
    """
    if window is None or len(history) < 2 * window:
        return False
    losses = [record["reconstruction_loss"] for record in history[-2 * window :]]
    before, last = sum(losses[:window]) / window, sum(losses[window:]) / window
    return before - last < improvement * before


@torch.inference_mode()
def embed(autoencoder, data, *, batch_size, precision=None, parallel=None):
    """Embeddings of all samples, in order, from the current weights.

    Every forward pass runs at the one shape ``(batch_size, channels, height,
    width)``: the last, partial batch is padded with blank images whose
    embeddings are dropped. Kernels are chosen by shape, and different kernels
    sum in different orders, so a batch of another size could give a row an
    embedding that differs in the last bits; at one fixed shape the same row
    gets the same embedding whether it is embedded alone, in a subset or with
    the whole collection, on any CPU or GPU.

    Parameters
    ----------
    autoencoder : ConvAutoencoder
        The model.
    data : ImageBatches
        The images.
    batch_size : int
        Images per inference batch: the fixed shape of every forward pass.
    precision : torch.dtype or None, default=None
        Autocast dtype; ``None`` runs in float32.
    parallel : DataParallel, default=None
        In a data-parallel run, every process embeds its shard of the samples
        and receives all the others'.

    Returns
    -------
    torch.Tensor of shape (n_samples, embedding_dim)
        Float32, on the data's device.
    """
    was_training = autoencoder.training
    autoencoder.eval()
    start, stop = (0, len(data)) if parallel is None else parallel.shard(len(data))
    # One output allocated up front: small per-batch results kept alive between
    # the batches' large temporaries fragment the heap, which then grows with
    # the number of batches.
    z = None
    for first in range(start, stop, batch_size):
        last = min(first + batch_size, stop)
        images = data.slice(first, last)
        if last - first < batch_size:
            padding = images.new_zeros((batch_size - (last - first), *images.shape[1:]))
            images = torch.cat([images, padding]).contiguous(memory_format=memory_format(data.device))
        with autocast(data.device, precision):
            part = autoencoder.encode(images).float()
        if z is None:
            z = torch.empty((stop - start, part.shape[1]), dtype=torch.float32, device=part.device)
        z[first - start : last - start] = part[: last - first]
    autoencoder.train(was_training)
    return z if parallel is None else parallel.gather_shards(z, len(data))


@dataclass
class ClusteringResult:
    """What the joint phase learned.

    Attributes
    ----------
    labels : torch.Tensor of shape (n_samples,)
        Cluster of every sample under the final weights.
    n_iter : int
        Mini-batches trained, in all.
    converged : bool
        Whether the label-change fraction fell below ``tol``.
    collapsed : bool
        Whether training stopped because a cluster emptied out.
    restored_iter : int
        Mini-batches behind the returned weights: ``n_iter`` unless a
        collapse made training return to the last update before it.
    history : list of dict
        One record per target update.
    plateaued : bool
        Whether training stopped because the number of changed labels had
        not reached a new low for ``n_iter_no_change`` updates.
    """

    labels: torch.Tensor
    n_iter: int
    converged: bool
    collapsed: bool
    restored_iter: int
    history: list = field(default_factory=list)
    plateaued: bool = False


def train_clustering(
    autoencoder,
    clustering_layer,
    data,
    *,
    gamma,
    max_iter,
    update_interval,
    tol,
    batch_size,
    learning_rate,
    generator,
    inference_batch_size,
    precision=None,
    augmentations=frozenset(),
    augment_generator=None,
    reconstruct_augmented=True,
    split_cluster=None,
    parallel=None,
    callback=None,
    n_iter_no_change=None,
    warmup=None,
):
    """Jointly train autoencoder and centres on ``L_r + gamma * KL(P || Q)``.

    Every ``update_interval`` mini-batches, Q is recomputed on all samples and
    the target P derived from it; P then stays fixed until the next update,
    indexed by sample position so that batches can be shuffled. After every
    update but the first, training stops when the fraction of labels that
    changed since the previous update is below ``tol``, or, with
    ``n_iter_no_change``, when that number has not fallen below its lowest
    value so far for ``n_iter_no_change`` updates in a row: on few images in
    many clusters a handful of borderline images can swap clusters at every
    update for good, and ``tol`` is then never reached. A fresh Adam
    optimiser drives encoder, decoder and centres.

    With augmentations (DEC-DA), the target P still comes from the clean
    images, while the batch's Q comes from augmented ones; the reconstruction
    target is the augmented batch or the clean one.

    A cluster that falls below a tenth of its size at the start is dying: at
    the update that finds it, its centre moves to one half of the cluster
    with the widest spread (split in two by ``split_cluster``), and the split
    cluster's centre to the other half, much as k-means implementations
    re-seed an empty cluster (never at the final update, which no training
    follows). Up to ``n_clusters`` such relocations happen; a
    populated cluster that then empties out stops training, and the weights
    of the last update before the collapse are restored: a collapsed solution
    never passes as converged.

    Parameters
    ----------
    autoencoder : ConvAutoencoder
        The pretrained model.
    clustering_layer : ClusteringLayer
        Centres initialised by k-means.
    data : ImageBatches
        The training images.
    gamma : float
        Weight of the clustering loss.
    max_iter : int
        Most mini-batches to train.
    update_interval : int
        Mini-batches between target updates.
    tol : float
        Label-change fraction under which training stops. Only a full
        interval counts: when ``max_iter`` is not a multiple of
        ``update_interval``, the final, shorter interval ends training
        without convergence.
    batch_size : int
        Images per step.
    learning_rate : float
        Adam's step size.
    generator : torch.Generator
        CPU generator that shuffles the data.
    inference_batch_size : int
        Images per batch when Q is recomputed.
    precision : torch.dtype or None, default=None
        Autocast dtype; ``None`` trains in float32.
    augmentations : frozenset of str, default=frozenset()
        Names of the augmentations applied to every training batch.
    augment_generator : torch.Generator, default=None
        Generator on the data's device that draws the augmentations.
    reconstruct_augmented : bool, default=True
        With augmentations, whether the reconstruction target is the
        transformed batch (True) or the clean one (False).
    split_cluster : callable, default=None
        ``split_cluster(points, seed)`` divides the float32 array ``points``
        of shape ``(n_points, embedding_dim)``, the embeddings of one cluster,
        in two, deterministically for an int ``seed``; it returns the labels
        (0 or 1) of the points and the two halves' means, of shape
        ``(2, embedding_dim)``. The estimator passes 2-means. ``None``
        re-seeds no dying cluster: a cluster that empties out stops training.
    parallel : DataParallel, default=None
        In a data-parallel run, this process's place in it: the process
        trains on its part of every batch, gradients are averaged, and Q is
        computed in shards and gathered, so that every process derives the
        same target, labels and decision to stop.
    callback : callable, default=None
        Called as ``callback("clustering", record)`` after every update.
    n_iter_no_change : int or None, default=None
        Updates in a row without a new low of the label change after which
        training stops (``plateaued``); an update with relocations does not
        count. ``None`` stops on ``tol`` and ``max_iter`` only, as DCEC does.
    warmup : int or None, default=None
        Mini-batches over which the learning rate ramps up linearly from the
        start of the phase; ``None`` ramps over the first ``update_interval``.
        No update before its end counts as convergence.

    Returns
    -------
    ClusteringResult

    Raises
    ------
    TrainingDivergedError
        If the loss is no longer finite.
    """
    modules = torch.nn.ModuleList([autoencoder, clustering_layer]).train()
    model = autoencoder if parallel is None else parallel.wrap(autoencoder)
    optimizer = torch.optim.Adam(modules.parameters(), lr=learning_rate)
    # A fresh Adam moves every weight by about the learning rate on its first
    # steps, whatever the gradient, which can wreck the pretrained embedding
    # before the target has a say; ramp the rate up over the first interval.
    warmup_steps = update_interval if warmup is None else max(1, warmup)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup_steps))
    n_clusters = clustering_layer.centers.shape[0]
    history = []
    previous_labels = previous_iteration = None
    initial_sizes = None
    n_relocations = 0
    healthy_state = None
    converged = collapsed = plateaued = False
    fewest_changed = None
    updates_without_new_low = 0
    reconstruction_total = torch.zeros((), device=data.device)
    clustering_total = torch.zeros((), device=data.device)
    steps_since_update = 0
    batches = iter(())
    iteration = 0
    while True:
        if iteration % update_interval == 0 or iteration == max_iter:
            z = embed(
                autoencoder, data, batch_size=inference_batch_size, precision=precision, parallel=parallel
            )
            q, labels, sizes = _assign(clustering_layer, z)
            totals = torch.stack([reconstruction_total, clustering_total])
            if parallel is not None:
                totals = parallel.average(totals)
            record = {
                "iteration": iteration,
                "reconstruction_loss": _mean_or_none(totals[0], steps_since_update),
                "clustering_loss": _mean_or_none(totals[1], steps_since_update),
                "label_change_fraction": None,
                "cluster_sizes": sizes.tolist(),
            }
            _check_finite(z, f"clustering iteration {iteration}")
            if initial_sizes is None:
                initial_sizes = sizes
            # No re-seeding at the final update: no training would follow to fit
            # the new centres to their images.
            final = iteration >= max_iter
            dying = [] if split_cluster is None or final else _dying_clusters(sizes, initial_sizes)
            dying = dying[: n_clusters - n_relocations]
            if parallel is not None:
                # Rank 0's choice, imposed as the verdict is below.
                dying = parallel.broadcast_object(dying)
            relocations = _relocate(
                dying, z, labels, clustering_layer, optimizer, split_cluster, generator, parallel
            )
            if relocations:
                record["relocations"] = relocations
                n_relocations += len(relocations)
                q, labels, sizes = _assign(clustering_layer, z)
                record["cluster_sizes"] = sizes.tolist()
            collapsed = bool(((initial_sizes > 0) & (sizes == 0)).any())
            if previous_labels is not None and not collapsed and not relocations:
                n_changed = (labels != previous_labels).sum().item()
                record["label_change_fraction"] = n_changed / len(labels)
                # A final update that max_iter cut short compares labels over a
                # shorter window than tol was meant for, and labels barely move
                # while the learning rate is still ramping up: neither counts
                # as convergence.
                full_window = iteration - previous_iteration == update_interval
                warmed_up = iteration >= warmup_steps
                converged = full_window and warmed_up and record["label_change_fraction"] < tol
                if fewest_changed is None or n_changed < fewest_changed:
                    fewest_changed, updates_without_new_low = n_changed, 0
                else:
                    updates_without_new_low += 1
                plateaued = n_iter_no_change is not None and updates_without_new_low >= n_iter_no_change
            if parallel is not None:
                # Every process gathered the same embeddings, so all reach the
                # same verdict; rank 0's is imposed anyway, so that a
                # difference in the last bits can never leave one process
                # training while the others have stopped.
                collapsed, converged, plateaued = parallel.broadcast_object((collapsed, converged, plateaued))
            history.append(record)
            if callback is not None:
                callback("clustering", record)
            if collapsed or converged or plateaued or iteration >= max_iter:
                break
            target = target_distribution(q).float()
            previous_labels, previous_iteration = labels, iteration
            healthy_state = (copy.deepcopy(modules.state_dict()), labels, iteration)
            reconstruction_total.zero_()
            clustering_total.zero_()
            steps_since_update = 0

        step = next(batches, None)
        if step is None:
            batches = _local_batches(len(data), batch_size, generator, parallel)
            step = next(batches)
        indices, share = step
        images = data.take(indices)
        inputs = augment_batch(images, augmentations, augment_generator)
        with autocast(data.device, precision):
            z, reconstruction = model(inputs)
        log_q = log_soft_assignment(z.float(), clustering_layer.centers, clustering_layer.alpha)
        reconstruction_loss = F.mse_loss(reconstruction.float(), inputs if reconstruct_augmented else images)
        cluster_loss = clustering_loss(log_q, target[indices.to(target.device)])
        if share is not None:
            reconstruction_loss, cluster_loss = reconstruction_loss * share, cluster_loss * share
        loss = reconstruction_loss + gamma * cluster_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if parallel is not None:
            # DistributedDataParallel averages the autoencoder's gradients only.
            parallel.average_gradient(clustering_layer.centers)
        optimizer.step()
        scheduler.step()
        reconstruction_total += reconstruction_loss.detach()
        clustering_total += cluster_loss.detach()
        steps_since_update += 1
        iteration += 1

    restored_iter = iteration
    if collapsed:
        state, labels, restored_iter = healthy_state
        modules.load_state_dict(state)
    return ClusteringResult(labels, iteration, converged, collapsed, restored_iter, history, plateaued)


def _assign(clustering_layer, z):
    """Soft assignments Q of all embeddings, their labels and the cluster sizes."""
    q = clustering_layer.log_assignment_of_all(z).exp()
    labels = q.argmax(dim=1)
    return q, labels, torch.bincount(labels, minlength=q.shape[1])


def _dying_clusters(sizes, initial_sizes):
    """Clusters left with less than ``DYING_FRACTION`` of their initial size."""
    return torch.nonzero(sizes < DYING_FRACTION * initial_sizes).flatten().tolist()


def _relocate(dying, z, labels, clustering_layer, optimizer, split_cluster, generator, parallel):
    """Move each dying centre into one half of the cluster with the widest spread.

    The spread of a cluster is the sum of its members' squared distances to
    its centre. ``split_cluster`` divides that cluster's embeddings in two;
    its own centre takes the larger half's mean, the dying centre the other's,
    and the optimiser's state of the centres starts again. Every
    process of a data-parallel run takes rank 0's centres.

    Returns
    -------
    list of dict
        One record per relocation: the dying ``cluster``, the cluster it was
        ``split_from`` and its size before the split.
    """
    if not dying:
        return []
    centers = clustering_layer.centers.detach().clone()
    labels = labels.clone()
    spreads = torch.zeros(len(centers), dtype=torch.float64, device=z.device)
    spreads.index_add_(0, labels, ((z - centers[labels]) ** 2).sum(dim=1).double())
    # A dying cluster is not split before its own relocation; once re-seeded, it may be.
    spreads[dying] = -1.0
    records = []
    for cluster in dying:
        widest = int(spreads.argmax())
        members = torch.nonzero(labels == widest).flatten()
        if len(torch.unique(z[members], dim=0)) < 2:
            break
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
        halves, means = split_cluster(z[members].cpu().numpy(), seed)
        larger = int(np.argmax(np.bincount(halves)))
        means = torch.as_tensor(means, dtype=centers.dtype, device=centers.device)
        centers[widest], centers[cluster] = means[larger], means[1 - larger]
        moved = torch.as_tensor(halves != larger, device=labels.device)
        labels[members[moved]] = cluster
        for index in (widest, cluster):
            kept = labels == index
            spreads[index] = ((z[kept] - centers[index]) ** 2).sum()
        records.append({"cluster": cluster, "split_from": widest, "size_before_split": len(members)})
    if parallel is not None:
        centers, records = parallel.broadcast_object((centers.cpu(), records))
    if not records:
        return records
    with torch.no_grad():
        clustering_layer.centers.copy_(centers.to(clustering_layer.centers.device))
    # Adam keeps one step count per parameter, all centres together: zeroing
    # the moved rows' moments under a large step count would move them by
    # several times the learning rate on their next steps. The centres' state
    # starts again whole (the network's is kept): every centre then moves by
    # about the learning rate, as at the start of the phase.
    optimizer.state.pop(clustering_layer.centers, None)
    return records


def _mean_or_none(total, count):
    if count == 0:
        return None
    mean = (total / count).item()
    _check_finite(mean, "clustering")
    return mean
