"""Device resolution, seeding that leaves global state alone, autocast and thread limits."""

import pytest
import torch

from skdcec._device import (
    autocast,
    autocast_dtype,
    cpu_threads,
    make_generator,
    place_module,
    resolve_device,
    seeded_global_rng,
)


def test_auto_resolves_to_an_available_device():
    """'auto' gives CUDA when present, else MPS, else the CPU."""
    device = resolve_device("auto")
    if torch.cuda.is_available():
        assert device.type == "cuda"
    elif device.type != "mps":
        assert device == torch.device("cpu")


@pytest.mark.parametrize("request_", ["cpu", torch.device("cpu")])
def test_cpu_always_resolves(request_):
    """The CPU is always there, by name or as a torch.device."""
    assert resolve_device(request_) == torch.device("cpu")


@pytest.mark.parametrize(
    "request_, message",
    [("tpu", "not a device torch understands"), ("cuda:99", "cuda:99"), ("meta", "not supported")],
)
def test_unavailable_or_unknown_devices_are_value_errors(request_, message):
    """Unknown or missing devices raise ValueError naming the request."""
    with pytest.raises(ValueError, match=message):
        resolve_device(request_)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_resolves_when_present():
    """On a CUDA machine 'cuda' and 'cuda:0' resolve."""
    assert resolve_device("cuda").type == "cuda"
    assert resolve_device("cuda:0") == torch.device("cuda:0")


def test_seeded_global_rng_restores_the_callers_state():
    """Inside, draws are seeded; outside, the global generator is exactly as before."""
    before = torch.get_rng_state()
    with seeded_global_rng(3, torch.device("cpu")):
        first = torch.rand(3)
    with seeded_global_rng(3, torch.device("cpu")):
        second = torch.rand(3)
    assert torch.equal(first, second)
    assert torch.equal(torch.get_rng_state(), before)


def test_local_generator_is_reproducible():
    """Generators with the same seed give the same permutation."""
    cpu = torch.device("cpu")
    a = torch.randperm(10, generator=make_generator(5, cpu))
    b = torch.randperm(10, generator=make_generator(5, cpu))
    assert torch.equal(a, b)


def test_autocast_dtype_choices():
    """bfloat16 when asked; 'auto' is float32 on the CPU."""
    cpu = torch.device("cpu")
    assert autocast_dtype("bfloat16", cpu) is torch.bfloat16
    assert autocast_dtype("float32", cpu) is None
    assert autocast_dtype("auto", cpu) is None


def test_bfloat16_autocast_runs_convolutions_on_cpu():
    """The bf16 autocast context really lowers a convolution's precision on the CPU."""
    conv = torch.nn.Conv2d(1, 2, 3)
    with autocast(torch.device("cpu"), torch.bfloat16):
        out = conv(torch.randn(1, 1, 5, 5))
    assert out.dtype == torch.bfloat16
    with autocast(torch.device("cpu"), None):
        assert conv(torch.randn(1, 1, 5, 5)).dtype == torch.float32


def test_place_module_makes_convolutions_channels_last():
    """On the CPU a module stays on the CPU, its convolution weights channels-last."""
    module = place_module(torch.nn.Conv2d(3, 4, 3), torch.device("cpu"))
    assert module.weight.device.type == "cpu"
    assert module.weight.is_contiguous(memory_format=torch.channels_last)
    assert not module.weight.is_contiguous()


def test_cpu_threads_caps_at_the_available_cores_and_restores(monkeypatch):
    """Inside the block torch uses at most the available cores; the caller's setting comes back."""
    from skdcec import _device

    previous = torch.get_num_threads()
    monkeypatch.setattr(_device.joblib, "cpu_count", lambda only_physical_cores=False: 1)
    try:
        torch.set_num_threads(3)
        with cpu_threads():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 3
        torch.set_num_threads(1)
        monkeypatch.setattr(_device.joblib, "cpu_count", lambda only_physical_cores=False: 8)
        with cpu_threads():
            assert torch.get_num_threads() == 1  # a smaller setting is the caller's choice
        with pytest.raises(KeyboardInterrupt):
            torch.set_num_threads(3)
            with cpu_threads():
                raise KeyboardInterrupt
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(previous)
