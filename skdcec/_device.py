"""Where and how the torch core runs: device choice, seeding, autocast."""

import contextlib

import joblib
import torch


def resolve_device(device="auto"):
    """Turn a device request into an available :class:`torch.device`.

    Parameters
    ----------
    device : str or torch.device, default="auto"
        ``"auto"`` picks CUDA, then Apple's MPS, then the CPU. Any other
        value (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a
        :class:`torch.device`) must name a device that exists here.

    Returns
    -------
    torch.device
        The device to train on.

    Raises
    ------
    ValueError
        If the device is not understood or not available on this machine.
    """
    if isinstance(device, str) and device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a device torch understands; use 'auto', "
            "'cpu', 'cuda', 'cuda:<index>', 'mps' or a torch.device."
        ) from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available on this "
                "machine; use device='auto' or device='cpu'."
            )
        index = 0 if resolved.index is None else resolved.index
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) exist; use an index "
                f"below {torch.cuda.device_count()}."
            )
    elif resolved.type == "mps":
        if not _mps_available():
            raise ValueError(
                f"device={device!r} was requested but MPS is not available on this "
                "machine; use device='auto' or device='cpu'."
            )
    elif resolved.type != "cpu":
        raise ValueError(
            f"device={device!r} is not supported; use 'auto', 'cpu', 'cuda' or 'mps'."
        )
    return resolved


def _mps_available():
    backend = getattr(torch.backends, "mps", None)
    return backend is not None and backend.is_available()


@contextlib.contextmanager
def seeded_global_rng(seed, device):
    """Seed torch's global generator inside the block, then restore it.

    Module constructors draw their initial weights from the global generator;
    forking it keeps the caller's random state exactly as it was.

    Parameters
    ----------
    seed : int
        Seed for the block.
    device : torch.device
        Device whose generator is forked too when it is a CUDA device.
    """
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type):
        torch.manual_seed(seed)
        yield


def make_generator(seed, device):
    """A local :class:`torch.Generator` on ``device`` seeded with ``seed``.

    Parameters
    ----------
    seed : int
        Seed of the generator.
    device : torch.device
        Device the generator produces numbers on.

    Returns
    -------
    torch.Generator
    """
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def autocast_dtype(precision, device):
    """The dtype to autocast to, or ``None`` for plain float32.

    Parameters
    ----------
    precision : {"auto", "float32", "bfloat16"}
        ``"auto"`` means bfloat16 on CUDA devices that support it, float32
        elsewhere.
    device : torch.device
        The training device.

    Returns
    -------
    torch.dtype or None
    """
    if precision == "bfloat16":
        return torch.bfloat16
    if precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def autocast(device, dtype):
    """Autocast context for ``dtype`` on ``device``; a no-op when ``dtype`` is None.

    Parameters
    ----------
    device : torch.device
        The training device.
    dtype : torch.dtype or None
        Reduced precision dtype, or ``None`` for float32.

    Returns
    -------
    contextlib.AbstractContextManager
    """
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def memory_format(device):
    """Memory layout of image batches and convolution weights on ``device``.

    Channels-last on every device: GPU convolutions run fastest in it, and
    oneDNN's CPU convolutions too (measured on 2 cores: 16 % more training
    images/s at 16x16 and 28x28 grayscale, 5-8 % at 64x64 and 128x128 RGB,
    5 % fewer at 8x8, where the feature maps shrink to one pixel). One fixed
    layout also keeps kernels from switching algorithms (and last bits)
    between batches whose layout happens to be ambiguous, such as
    single-channel ones.

    Parameters
    ----------
    device : torch.device
        The device.

    Returns
    -------
    torch.memory_format
    """
    return torch.channels_last


def place_module(module, device):
    """Move ``module`` to ``device``, its convolution weights channels-last.

    Parameters
    ----------
    module : torch.nn.Module
        The model.
    device : torch.device
        Target device.

    Returns
    -------
    torch.nn.Module
        The same module, moved.
    """
    return module.to(device=device, memory_format=memory_format(device))


@contextlib.contextmanager
def cpu_threads():
    """Cap torch's intra-op threads at the cores this process may use, then restore.

    torch sizes its thread pool from the machine's cores, which can be far
    more than a container's CPU quota or a process's affinity mask allow;
    threads beyond those cores only contend. Inside the block torch uses at
    most the physical cores that :func:`joblib.cpu_count` finds available (it
    reads cgroup quotas and the affinity mask); a smaller setting, such as the
    one a joblib worker inherits through ``OMP_NUM_THREADS``, is kept. On
    leaving, the caller's setting is back.
    """
    previous = torch.get_num_threads()
    available = max(1, joblib.cpu_count(only_physical_cores=True))
    if previous > available:
        torch.set_num_threads(available)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)
