"""Fits on a Dask cluster: one pretraining per cache entry, whichever workers ask for it."""

import contextlib
import sys

import joblib


def pretraining_lock(memory, cache_arguments):
    """A cluster-wide lock around one cached pretraining, inside a Dask worker.

    ``joblib.Memory`` does not lock its entries: two workers that fit the
    same fold at the same time would both pretrain it. Inside a Dask worker,
    this returns a :class:`distributed.Lock` named after the cache key, so
    the second fit waits for the first to store the autoencoder and then
    reads it. Elsewhere, or without a cache, it returns a null context, and
    Dask is never imported.

    Parameters
    ----------
    memory : None, str or object with the joblib.Memory interface
        The estimator's ``memory`` parameter.
    cache_arguments : tuple
        The arguments that key the cached pretraining.

    Returns
    -------
    contextlib.AbstractContextManager
    """
    distributed = sys.modules.get("distributed")
    if memory is None or getattr(memory, "location", "") is None or distributed is None:
        return contextlib.nullcontext()
    try:
        distributed.get_worker()
    except ValueError:
        return contextlib.nullcontext()
    return distributed.Lock(f"skdcec-pretraining-{joblib.hash(cache_arguments)}")
