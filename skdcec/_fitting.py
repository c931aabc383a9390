"""Fitting DCEC on validated images: pretraining (cached), initial centres, joint training, warnings.

The estimator validates its input and parameters' types and hands the rows
over with its parameters; this module runs the method and returns the fitted
state, which the estimator sets in one place.
"""

import math
import sys
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_memory

from skdcec._augmentation import AUGMENTATIONS, resolve_augmentations
from skdcec._clustering import ClusteringLayer
from skdcec._dask import pretraining_lock
from skdcec._data import ImageBatches, channel_statistics
from skdcec._device import autocast_dtype, make_generator, resolve_device
from skdcec._distributed import DataParallel, launched_by_torchrun
from skdcec._fitted import FittedState
from skdcec._inference import inference_batch_size
from skdcec._initialization import initial_centers, split_in_two
from skdcec._pretraining import (
    PretrainingSettings,
    autoencoder_from_state,
    network_from_params,
    pretrain_plateau,
    pretrained_autoencoder_state,
    resolve_pretrain_epochs,
)
from skdcec._training import embed, train_clustering


# DCEC's joint phase: 20,000 mini-batches of 256, a target update every 140,
# on 70,000 MNIST digits: 73 passes over the data, an update every half pass.
DCEC_MAX_ITER = 20000
DCEC_UPDATE_INTERVAL = 140
# update_interval="auto": a target update every 5 passes over the data, at
# most DCEC's 140 mini-batches (USPS: DCEC's 140). Updating every pass met tol
# early, before the clusters had settled: on the 8x8 digits NMI 0.836, 0.811,
# 0.816 (seeds 0-2) against 0.833, 0.821, 0.831 with an update every 5 passes.
JOINT_UPDATE_PASSES = 5
# max_iter="auto": passes enough for the digits' joint phase to meet tol (110
# to 350 passes on three seeds), at most DCEC's 20,000 mini-batches.
JOINT_PASSES = 400


def resolve_joint_schedule(max_iter, update_interval, n_samples, batch_size):
    """Return the joint phase's ``(max_iter, update_interval, warmup)`` in mini-batches.

    Parameters
    ----------
    max_iter : int or "auto"
        The estimator's parameter. ``"auto"`` is ``JOINT_PASSES`` passes over
        the data, at most DCEC's 20,000 mini-batches.
    update_interval : int or "auto"
        The estimator's parameter. ``"auto"`` is ``JOINT_UPDATE_PASSES``
        passes over the data, at most DCEC's 140 mini-batches.
    n_samples : int
        Training images.
    batch_size : int
        Images per mini-batch.

    Returns
    -------
    tuple of int
        Mini-batches of joint training, between target updates, and of the
        learning-rate warm-up: a tenth of the phase, at least one update
        interval and at most DCEC's 140.
    """
    batches_per_pass = math.ceil(n_samples / batch_size)
    if max_iter == "auto":
        max_iter = min(DCEC_MAX_ITER, JOINT_PASSES * batches_per_pass)
    if update_interval == "auto":
        update_interval = min(DCEC_UPDATE_INTERVAL, JOINT_UPDATE_PASSES * batches_per_pass)
    warmup = min(DCEC_UPDATE_INTERVAL, max(update_interval, max_iter // 10))
    return max_iter, update_interval, warmup


def print_progress(stage, record):
    """Write one line of progress on standard error: the estimator's ``verbose=1``.

    Parameters
    ----------
    stage : {"pretrain", "clustering"}
        The phase.
    record : dict
        The record passed to ``fit``'s ``callback``.
    """
    if stage == "pretrain":
        message = (
            f"[DCEC] pretrain epoch {record['epoch']}/{record['n_epochs']}: "
            f"reconstruction loss {record['reconstruction_loss']:.5f}"
        )
    else:
        change = record["label_change_fraction"]
        message = (
            f"[DCEC] iteration {record['iteration']}: label change "
            f"{'-' if change is None else f'{change:.4f}'}, sizes {record['cluster_sizes']}"
        )
        for relocation in record.get("relocations", ()):
            message += (
                f"; cluster {relocation['cluster']} was dying and took half of cluster "
                f"{relocation['split_from']} ({relocation['size_before_split']} images)"
            )
    sys.stderr.write(message + "\n")


def _progress(callbacks, n_epochs, max_iter):
    """One callback for the training loops that passes records, with their totals, to ``callbacks``."""
    callbacks = [callback for callback in callbacks if callback is not None]
    if not callbacks:
        return None

    def report(stage, record):
        totals = {"n_epochs": n_epochs} if stage == "pretrain" else {"pretrain_epochs": n_epochs}
        record = {**record, **totals, "max_iter": max_iter}
        for callback in callbacks:
            callback(stage, record)

    return report


def _check_augment(augment, n_channels):
    if not isinstance(augment, bool):
        if not all(isinstance(name, str) for name in augment):
            raise ValueError(
                f"augment={augment!r} must be True, False or a tuple of names from "
                f"{sorted(AUGMENTATIONS)}, e.g. augment=('shift', 'rotate')."
            )
        unknown = set(augment) - AUGMENTATIONS
        if unknown:
            raise ValueError(
                f"augment={augment!r} names unknown augmentations {sorted(unknown)}; "
                f"choose from {sorted(AUGMENTATIONS)}, or pass True or False."
            )
    return resolve_augmentations(augment, n_channels)


def _draw_seeds(random_state):
    if random_state is None:
        # Fresh entropy without touching NumPy's global generator.
        rng = np.random.default_rng()
        return rng.integers(np.iinfo(np.int32).max, size=3).tolist()
    rng = check_random_state(random_state)
    return rng.randint(np.iinfo(np.int32).max, size=3).tolist()


def fit_model(X, image_shape, input_ndim, params, *, n_features_in, feature_names_in=None, callback=None):
    """Pretrain the autoencoder, initialise the centres and train jointly; return the fitted state.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Validated rows of channels-last images, uint8 or float.
    image_shape : tuple of int
        ``(height, width, channels)``.
    input_ndim : int
        Dimensions of the user's ``X``.
    params : dict
        The estimator's parameters.
    n_features_in : int
        Features of the user's ``X``.
    feature_names_in : ndarray or None, default=None
        Its column names.
    callback : callable, default=None
        The progress hook of ``fit``.

    Returns
    -------
    FittedState
    """
    n_samples = X.shape[0]
    n_clusters = params["n_clusters"]
    if n_samples < n_clusters:
        raise ValueError(
            f"n_samples={n_samples} should be >= n_clusters={n_clusters}. "
            "Pass more images or lower n_clusters."
        )
    if params["init"] == "spectral" and n_samples <= n_clusters and n_clusters > 1:
        raise ValueError(
            f'init="spectral" needs more images than clusters, but n_samples={n_samples} '
            f"and n_clusters={n_clusters}; pass more images, lower n_clusters or use "
            'init="k-means".'
        )
    network = network_from_params(params, input_ndim, image_shape)
    augmentations = _check_augment(params["augment"], image_shape[2])
    if augmentations and network.kind == "dense":
        picked = ""
        if params["autoencoder"] == "auto":
            picked = " (autoencoder='auto' picks it for 2-D X without image_shape)"
        raise ValueError(
            f"augment={params['augment']!r} transforms images, but the dense autoencoder{picked} "
            "takes vectors; pass augment=False, or pass images (3-D/4-D X, or 2-D X with "
            "image_shape) with autoencoder='conv'."
        )
    reconstruct_augmented = bool(augmentations) and params["reconstruction_target"] == "augmented"
    batches_per_epoch = math.ceil(n_samples / params["batch_size"])
    pretrain_epochs = resolve_pretrain_epochs(
        params["pretrain_epochs"], bool(augmentations), network.kind, batches_per_epoch
    )
    max_iter, update_interval, warmup = resolve_joint_schedule(
        params["max_iter"], params["update_interval"], n_samples, params["batch_size"]
    )
    report = _progress([print_progress if params["verbose"] else None, callback], pretrain_epochs, max_iter)
    device = resolve_device(params["device"])
    parallel = None
    if launched_by_torchrun():
        parallel = DataParallel(device)
        parallel.check_sizes(n_samples, params["batch_size"])
        device = parallel.device
    precision = autocast_dtype(params["precision"], device)
    seeds = _draw_seeds(params["random_state"])
    if parallel is not None:
        # Without an int random_state every process drew its own seeds.
        seeds = parallel.broadcast_object(seeds)
    pretrain_seed, kmeans_seed, clustering_seed = seeds

    n_channels = image_shape[2]
    if X.dtype == np.uint8:
        mean, std = np.zeros(n_channels), np.full(n_channels, 255.0)
    else:
        mean, std = channel_statistics(X, n_channels)
    data = ImageBatches(X, image_shape, mean, std, device)

    from skdcec._version import __version__

    settings = PretrainingSettings(
        network=network,
        epochs=pretrain_epochs,
        plateau=pretrain_plateau(params["pretrain_epochs"], pretrain_epochs, batches_per_epoch),
        batch_size=params["batch_size"],
        learning_rate=params["learning_rate"],
        precision=params["precision"],
        compile=params["compile"],
        augmentations=tuple(sorted(augmentations)),
        reconstruct_augmented=reconstruct_augmented,
        seed=pretrain_seed,
        device=str(device),
        skdcec_version=__version__,
    )
    memory = params["memory"]
    pretrained = check_memory(memory).cache(
        pretrained_autoencoder_state, ignore=["data", "parallel", "callback"]
    )
    with pretraining_lock(memory, (X, mean, std, settings)):
        state, pretrain_history = pretrained(
            X, mean, std, settings, data=data, parallel=parallel, callback=report
        )
    autoencoder = autoencoder_from_state(state, network, device)

    batch_size = inference_batch_size(image_shape)
    embeddings = embed(autoencoder, data, batch_size=batch_size, precision=precision, parallel=parallel)
    if parallel is None or parallel.is_main:
        centers = initial_centers(
            embeddings.cpu().numpy().astype(np.float64),
            n_clusters,
            init=params["init"],
            n_init=params["n_init"],
            seed=kmeans_seed,
        )
    else:
        centers = torch.empty(n_clusters, network.embedding_dim)
    if parallel is not None:
        centers = parallel.broadcast(centers.to(device)).cpu()
    clustering_layer = ClusteringLayer(centers, params["alpha"]).to(device)

    result = train_clustering(
        torch.compile(autoencoder) if params["compile"] else autoencoder,
        clustering_layer,
        data,
        gamma=params["gamma"],
        max_iter=max_iter,
        update_interval=update_interval,
        tol=params["tol"],
        batch_size=params["batch_size"],
        learning_rate=params["learning_rate"],
        generator=make_generator(clustering_seed, torch.device("cpu")),
        inference_batch_size=batch_size,
        precision=precision,
        augmentations=augmentations,
        augment_generator=make_generator(
            clustering_seed if parallel is None else parallel.rank_seed(clustering_seed), device
        ),
        reconstruct_augmented=reconstruct_augmented,
        split_cluster=split_in_two,
        parallel=parallel,
        callback=report,
        n_iter_no_change=params["n_iter_no_change"],
        warmup=warmup,
    )
    if parallel is not None:
        parallel.close()
    labels = result.labels.cpu().numpy().astype(np.intp)
    _warn_about_convergence(result, labels, params, max_iter)
    return FittedState(
        autoencoder=autoencoder.eval(),
        cluster_centers=clustering_layer.centers.detach().cpu().numpy().astype(np.float64),
        labels=labels,
        history={"pretrain": pretrain_history, "clustering": result.history},
        n_iter=result.n_iter,
        image_shape=image_shape,
        input_mean=mean,
        input_scale=std,
        device=device,
        n_features_in=n_features_in,
        input_ndim=input_ndim,
        input_dtype=X.dtype,
        feature_names_in=feature_names_in,
    )


def _warn_about_convergence(result, labels, params, max_iter):
    n_clusters = params["n_clusters"]
    sizes = np.bincount(labels, minlength=n_clusters)
    if result.collapsed:
        collapsed_sizes = result.history[-1]["cluster_sizes"]
        n_relocations = sum(len(record.get("relocations", ())) for record in result.history)
        warnings.warn(
            f"Clusters emptied out during joint training (sizes {collapsed_sizes}) after "
            f"{n_relocations} relocation(s) of dying centres into the widest clusters; "
            f"training stopped at iteration {result.n_iter} and went back to the "
            f"solution of iteration {result.restored_iter}, the last before the "
            f"collapse (sizes {sizes.tolist()}). Try a smaller "
            "learning_rate or gamma, longer pretraining, or fewer clusters.",
            ConvergenceWarning,
        )
    elif not (result.converged or result.plateaued):
        warnings.warn(
            f"Joint training reached max_iter={max_iter} mini-batches (max_iter={params['max_iter']!r}) "
            f"before fewer than tol={params['tol']} of the labels changed between updates. "
            "Increase max_iter or tol, or set n_iter_no_change.",
            ConvergenceWarning,
        )
    if (sizes == 0).any() and not result.collapsed:
        warnings.warn(
            f"{int((sizes == 0).sum())} of {n_clusters} clusters are empty "
            f"(sizes {sizes.tolist()}). Lower n_clusters or check for duplicate "
            "images.",
            ConvergenceWarning,
        )
