"""Batches of image collections: scaling, layout, memory maps, statistics."""

import os

import numpy as np
import pytest
import torch

from skdcec._data import ImageBatches, channel_statistics

CPU = torch.device("cpu")


def test_uint8_is_scaled_to_unit_range_in_nchw():
    """uint8 channels-last rows become float32 NCHW in [0, 1]."""
    images = np.arange(2 * 2 * 3 * 3, dtype=np.uint8).reshape(2, 2, 3, 3) * 7
    data = ImageBatches(images.reshape(2, -1), (2, 3, 3), None, None, CPU)
    batch = data.take(np.array([1]))
    assert batch.dtype == torch.float32 and batch.shape == (1, 3, 2, 3)
    np.testing.assert_allclose(batch[0].permute(1, 2, 0).numpy(), images[1] / 255.0, rtol=1e-6)
    torch.testing.assert_close(data.slice(0, 2), data.take(np.array([0, 1])))


def test_float_is_standardised_per_channel():
    """Non-uint8 data is shifted and scaled with per-channel statistics."""
    rng = np.random.default_rng(0)
    images = rng.normal(loc=[10.0, -5.0], scale=[2.0, 0.5], size=(500, 4, 4, 2))
    flat = images.reshape(500, -1)
    mean, std = channel_statistics(flat, 2)
    np.testing.assert_allclose(mean, images.reshape(-1, 2).mean(0), rtol=1e-10)
    np.testing.assert_allclose(std, images.reshape(-1, 2).std(0), rtol=1e-8)
    batch = ImageBatches(flat, (4, 4, 2), mean, std, CPU).slice(0, 500)
    np.testing.assert_allclose(batch.mean(dim=(0, 2, 3)).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(batch.std(dim=(0, 2, 3)).numpy(), 1.0, atol=1e-3)


def test_statistics_are_exact_across_chunks_and_offsets(monkeypatch):
    """Chunked accumulation matches NumPy even with a large offset; constant data gets std 1."""
    from skdcec import _data

    monkeypatch.setattr(_data, "CHUNK_BYTES", 7 * 3 * 8)
    X = 1e9 + np.random.default_rng(1).normal(size=(50, 3))
    mean, std = channel_statistics(X, 1)
    np.testing.assert_allclose(mean, [X.mean()], rtol=1e-12)
    np.testing.assert_allclose(std, [X.std()], rtol=1e-6)
    _, constant_std = channel_statistics(np.full((10, 4), 3.0), 1)
    np.testing.assert_array_equal(constant_std, [1.0])


@pytest.mark.parametrize("n_features", [1, 3 * 128 * 128, 2**24])
def test_whole_collection_reads_are_chunked_by_bytes(n_features):
    """Statistics and device copies convert about CHUNK_BYTES at a time, whatever an image's size."""
    from skdcec import _data

    rows = _data.rows_per_chunk(np.empty((0, n_features), dtype=np.float32))
    assert rows >= 1
    assert rows == 1 or rows * n_features * 8 <= _data.CHUNK_BYTES


def test_float64_far_from_zero_keeps_its_spread():
    """float64 images at an offset of 1e9 are standardised before float32 could round their spread away."""
    rng = np.random.default_rng(2)
    flat = 1e9 + rng.normal(size=(200, 16))
    mean, std = channel_statistics(flat, 1)
    batch = ImageBatches(flat, (4, 4, 1), mean, std, CPU).take(np.arange(200))
    expected = (flat - mean) / std
    np.testing.assert_allclose(batch.reshape(200, 16).numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_a_collection_kept_on_the_device_serves_the_same_batches(dtype):
    """The GPU's resident copy (exercised here on the CPU) gives the batches of the host path, unaltered."""
    rng = np.random.default_rng(4)
    flat = rng.integers(0, 256, size=(40, 18)).astype(dtype) + (0 if dtype == np.uint8 else 1e3)
    mean, std = channel_statistics(flat, 2)
    host = ImageBatches(flat, (3, 3, 2), mean, std, CPU, resident=False)
    kept = ImageBatches(flat, (3, 3, 2), mean, std, CPU, resident=True)
    indices = torch.tensor([0, 5, 39])
    for _ in range(2):  # a second read sees no batch written back into the copy
        torch.testing.assert_close(kept.take(indices), host.take(indices))
        torch.testing.assert_close(kept.slice(3, 11), host.slice(3, 11))
    assert kept.take(indices).dtype == torch.float32


def test_tiny_spread_of_tiny_values_is_kept():
    """Images scaled by 1e-13 have a real spread, not none."""
    flat = 1e-13 * np.random.default_rng(3).uniform(size=(100, 9))
    _, std = channel_statistics(flat, 1)
    np.testing.assert_allclose(std, [flat.std()], rtol=1e-6)


def test_memmaps_are_read_batch_by_batch(tmp_path):
    """A read-only uint8 memmap serves batches without being loaded or copied whole."""
    path = tmp_path / "images.npy"
    store = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(100, 16))
    store[:] = np.arange(100, dtype=np.uint8)[:, None]
    store.flush()
    mapped = np.load(path, mmap_mode="r")
    data = ImageBatches(mapped, (4, 4, 1), None, None, CPU)
    batch = data.take(torch.tensor([3, 97]))
    np.testing.assert_allclose(batch[:, 0, 0, 0].numpy(), np.array([3, 97]) / 255.0, rtol=1e-6)
    assert data.X is mapped


def _mapped_resident_kib(path):
    """Resident KiB of this process's mappings of ``path``, from /proc/self/smaps."""
    resident = 0
    inside = False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and ":" not in fields[0]:
                inside = fields[-1] == str(path)
            elif inside and fields[0] == "Rss:":
                resident += int(fields[1])
    return resident


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="needs Linux's /proc/self/smaps")
def test_pages_of_a_memmap_do_not_pile_up_in_resident_memory(tmp_path):
    """After an epoch over a memmap none of it stays resident, and every value read was right."""
    path = tmp_path / "images.npy"
    n, row = 2048, 64 * 64  # an 8 MiB file
    store = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, row))
    store[:] = (np.arange(n) % 251).astype(np.uint8)[:, None]
    store.flush()
    del store
    mapped = np.load(path, mmap_mode="r")
    data = ImageBatches(mapped, (64, 64, 1), None, None, CPU)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    for start in range(0, n, 32):
        indices = order[start : start + 32].sort().values
        batch = data.take(indices)
        np.testing.assert_allclose(batch[:, 0, 0, 0].numpy(), (indices.numpy() % 251) / 255.0, rtol=1e-6)
    for start in range(0, n, 100):
        data.slice(start, start + 100)
    assert _mapped_resident_kib(path) == 0


def test_copy_on_write_memmaps_keep_their_private_changes(tmp_path):
    """Pages of a copy-on-write memmap are never dropped: the user's in-memory edits survive."""
    path = tmp_path / "images.npy"
    np.save(path, np.zeros((40, 16), dtype=np.uint8))
    private = np.load(path, mmap_mode="c")
    private[:] = 255
    data = ImageBatches(private, (4, 4, 1), None, None, CPU)
    for start in range(0, 40, 8):
        np.testing.assert_array_equal(data.slice(start, start + 8).numpy(), 1.0)
    np.testing.assert_array_equal(data.take(np.arange(40)).numpy(), 1.0)
