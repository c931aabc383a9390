"""Scaling out: searches on a Dask cluster, one model trained by several torch.distributed processes."""

import contextlib
import functools
import itertools
import json
import os
import socket
import subprocess
import sys
import warnings

import joblib
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import GridSearchCV

import skdcec
from skdcec import DeepConvEmbeddingClustering


class _LoggingMemory(joblib.Memory):
    """A ``joblib.Memory`` that appends a line to ``log`` whenever the cached function really runs.

    The line names the process, so a test can tell which worker computed an entry.
    """

    def __init__(self, location, log):
        super().__init__(location, verbose=0)
        self.log = log

    def cache(self, func=None, **kwargs):
        log = self.log

        def logged(*args, **call_kwargs):
            with open(log, "a") as file:
                file.write(f"{os.getpid()}\n")
            return func(*args, **call_kwargs)

        # joblib keys the cache on the function's name and source: keep the original's.
        return super().cache(functools.update_wrapper(logged, func), **kwargs)


def _search(X, memory, n_jobs):
    search = GridSearchCV(
        DeepConvEmbeddingClustering(
            pretrain_epochs=8,
            max_iter=30,
            update_interval=10,
            batch_size=64,
            n_init=2,
            device="cpu",
            memory=memory,
            random_state=0,
        ),
        {"n_clusters": [3, 5]},
        cv=2,
        n_jobs=n_jobs,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return search.fit(X)


@pytest.mark.slow
def test_grid_search_on_dask_equals_the_serial_search_and_shares_the_cache(digits, tmp_path):
    """GridSearchCV on a 2-process Dask cluster gives the serial results; pretraining runs once per fold."""
    distributed = pytest.importorskip("distributed")
    import torch

    X = digits[0][:160]
    # Dask workers compute with one thread each; so does the serial reference,
    # because floating-point reductions may depend on the number of threads.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        serial = _search(X, memory=None, n_jobs=None)
    finally:
        torch.set_num_threads(threads)

    cache, log = tmp_path / "cache", tmp_path / "pretraining.log"
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        workers = client.run(lambda: (os.getpid(), skdcec.__file__))
        with joblib.parallel_backend("dask"):
            on_dask = _search(X, memory=_LoggingMemory(str(cache), str(log)), n_jobs=-1)
    worker_pids = {pid for pid, _ in workers.values()}
    # The workers run this copy of skdcec, not another one installed.
    assert {path for _, path in workers.values()} == {skdcec.__file__}

    np.testing.assert_array_equal(
        on_dask.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"]
    )
    np.testing.assert_array_equal(
        on_dask.cv_results_["split0_test_score"], serial.cv_results_["split0_test_score"]
    )
    assert on_dask.best_params_ == serial.best_params_
    np.testing.assert_array_equal(on_dask.best_estimator_.labels_, serial.best_estimator_.labels_)

    # Two folds fitted on the workers, the refit on all data here: three
    # pretrained autoencoders stored, each computed exactly once although
    # four fits ran on two workers, the two candidates of a fold often at
    # the same time.
    entries = list(cache.glob("joblib/**/output.pkl"))
    assert len(entries) == 3
    runs = [int(line) for line in log.read_text().split()]
    assert len(runs) == 3
    assert sorted(runs).count(os.getpid()) == 1
    assert set(runs) - {os.getpid()} <= worker_pids


# Run by every process of a torchrun launch: fit, then keep what each rank learned.
_TORCHRUN_FIT = """
import os
import sys
import warnings
import weakref

import numpy as np
import torch.distributed as dist
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from skdcec import DeepConvEmbeddingClustering

started = []
init_process_group = dist.init_process_group


def init_and_keep_a_weak_reference(*args, **kwargs):
    init_process_group(*args, **kwargs)
    started.append(weakref.ref(dist.group.WORLD))


dist.init_process_group = init_and_keep_a_weak_reference
warnings.simplefilter("ignore", ConvergenceWarning)
est = DeepConvEmbeddingClustering(**{params!r}).fit(load_digits().images[:{n_samples}])
# fit started the process group for itself, so it took it down again, and
# nothing holds it any more: a group kept alive keeps gloo's threads running
# into interpreter shutdown, where they can abort the process.
assert not dist.is_initialized()
assert len(started) == 1 and started[0]() is None
relocations = sum(len(record.get("relocations", ())) for record in est.history_["clustering"])
np.savez(
    f"{{sys.argv[1]}}/rank{{os.environ['RANK']}}.npz",
    labels=est.labels_, centers=est.cluster_centers_, relocations=relocations,
)
"""

_DDP_PARAMS = {
    "n_clusters": 10,
    "pretrain_epochs": 10,
    "max_iter": 60,
    "update_interval": 20,
    "batch_size": 64,
    "n_init": 4,
    "device": "cpu",
    "random_state": 0,
}


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _torchrun_fit(params, n_samples, tmp_path):
    """Fit under torchrun on two processes; return what each rank learned."""
    script = tmp_path / "fit.py"
    script.write_text(_TORCHRUN_FIT.format(params=params, n_samples=n_samples))
    # The processes import this copy of skdcec and compute with one thread each.
    source_root = os.path.dirname(os.path.dirname(skdcec.__file__))
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([source_root, os.environ.get("PYTHONPATH", "")]),
    )
    launch = [
        *(sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2"),
        *("--master-addr=127.0.0.1", f"--master-port={_free_port()}", str(script), str(tmp_path)),
    ]
    finished = subprocess.run(launch, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    return [np.load(tmp_path / f"rank{rank}.npz") for rank in (0, 1)]


def _assert_in_sync(ranks):
    """The replicas stayed identical: same centres, same labels, in both processes."""
    np.testing.assert_array_equal(ranks[0]["centers"], ranks[1]["centers"])
    np.testing.assert_array_equal(ranks[0]["labels"], ranks[1]["labels"])


@pytest.mark.slow
def test_torchrun_with_two_processes_trains_the_single_process_model(digits, tmp_path):
    """Two gloo processes under torchrun train one model, in sync, that agrees with one process.

    On 8x8 images, the convolutional network: the dense network's denoising
    pretraining draws dropout masks per process, so it agrees in
    distribution only.
    """
    n_samples = 300
    ranks = _torchrun_fit(_DDP_PARAMS, n_samples, tmp_path)
    _assert_in_sync(ranks)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        single = DeepConvEmbeddingClustering(**_DDP_PARAMS).fit(digits[0][:n_samples].reshape(-1, 8, 8))
    assert adjusted_rand_score(single.labels_, ranks[0]["labels"]) >= 0.95


@pytest.mark.slow
def test_torchrun_processes_relocate_dying_clusters_in_sync(tmp_path):
    """Dying clusters re-seeded during a two-process run leave both replicas identical."""
    rushed = dict(
        _DDP_PARAMS, n_clusters=20, pretrain_epochs=3, max_iter=50, update_interval=5, tol=0.0,
        learning_rate=1e-2, gamma=1.0, n_init=2, random_state=2,
    )
    ranks = _torchrun_fit(rushed, 200, tmp_path)
    assert ranks[0]["relocations"] >= 1, "the rushed case was built to let clusters dwindle"
    assert ranks[0]["relocations"] == ranks[1]["relocations"]
    _assert_in_sync(ranks)


def test_a_plain_fit_stays_out_of_torch_distributed_and_dask_locks(digits, quick_params, tmp_path):
    """Outside torchrun and Dask workers, fit starts no process group and takes no cluster lock."""
    import torch.distributed as dist

    from skdcec._dask import pretraining_lock

    assert isinstance(pretraining_lock(str(tmp_path), ("key",)), contextlib.nullcontext)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        DeepConvEmbeddingClustering(3, memory=str(tmp_path), random_state=0, **quick_params).fit(
            digits[0][:60]
        )
    assert not dist.is_initialized()


@pytest.mark.slow
def test_cluster_command_under_torchrun_writes_once_from_rank_zero(digits, tmp_path):
    """'torchrun -m skdcec cluster' trains on two processes and rank 0 alone writes the results."""
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    for index, pixels in enumerate(digits[0][:40]):
        Image.fromarray((pixels.reshape(8, 8) * 15).astype(np.uint8)).save(images / f"{index:02d}.png")
    source_root = os.path.dirname(os.path.dirname(skdcec.__file__))
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([source_root, os.environ.get("PYTHONPATH", "")]),
    )
    launch = [
        *(sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2"),
        *("--master-addr=127.0.0.1", f"--master-port={_free_port()}", "-m", "skdcec", "cluster"),
        *(str(images), "--out", str(tmp_path / "out"), "-k", "3", "--size", "8", "--color", "gray"),
        *("--pretrain-epochs", "2", "--max-iter", "4", "--update-interval", "2", "--batch-size", "16"),
        *("--device", "cpu"),
    ]
    finished = subprocess.run(launch, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    # Nothing but rank 0's results folder was written beside the images.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["images", "out"]
    rows = (tmp_path / "out" / "clusters.csv").read_text().splitlines()
    assert len(rows) == 1 + 40
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["n_images"] == 40
    # Progress came from rank 0 only.
    assert finished.stderr.count("Results are in") == 1


@pytest.mark.parametrize("world_size", [2, 3, 4])
@pytest.mark.parametrize("batch", [4, 7, 64])
def test_parts_of_a_batch_weight_to_the_whole_batch_mean(world_size, batch):
    """Weighted by their shares, the processes' mean losses average to the whole batch's mean loss."""
    import torch

    from skdcec._distributed import DataParallel

    indices = torch.arange(batch) * 3
    losses = torch.rand(3 * batch, dtype=torch.float64)
    processes = []
    for rank in range(world_size):
        # The arithmetic of a process's part needs no process group.
        process = DataParallel.__new__(DataParallel)
        process.rank, process.world_size = rank, world_size
        processes.append(process)
    parts = [process.split_batch(indices) for process in processes]
    assert torch.equal(torch.cat([local for local, _ in parts]), indices)
    averaged = sum(share * losses[local].mean() for local, share in parts) / world_size
    assert averaged.item() == pytest.approx(losses[indices].mean().item(), rel=1e-12)
    shards = [process.shard(batch) for process in processes]
    assert shards[0][0] == 0 and shards[-1][1] == batch
    assert all(stop == start for (_, stop), (start, _) in itertools.pairwise(shards))
    assert all(stop > start for start, stop in shards)


def test_a_batch_smaller_than_the_processes_is_skipped_by_all():
    """The last batch of an epoch, when it has fewer images than processes, is trained by none."""
    import torch

    from skdcec._distributed import DataParallel

    process = DataParallel.__new__(DataParallel)
    process.rank, process.world_size = 1, 4
    assert process.split_batch(torch.arange(3)) == (None, 0.0)
