"""Shared fixtures: small real image sets and a quick estimator configuration."""

import os

# scikit-learn's array-API check runs (instead of skipping) only with this set,
# and it must be set before SciPy is first imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

# Keep the suite fast and predictable on a 2-core machine.
torch.set_num_threads(min(2, torch.get_num_threads()))

QUICK = dict(pretrain_epochs=10, max_iter=40, update_interval=10, batch_size=64, n_init=2, device="cpu")


@pytest.fixture(scope="session")
def digits():
    """The 8x8 digits of scikit-learn, flattened, with their labels."""
    data = load_digits()
    return data.data, data.target


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models train fastest on one thread, and far faster than on two busy cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def quick_params():
    """Parameters that fit a small data set in well under a second."""
    return dict(QUICK)


@pytest.fixture
def pretrainings(monkeypatch):
    """The list that every pretraining run from now on appends to."""
    from skdcec import _pretraining

    calls = []
    original = _pretraining.pretrain

    def counting_pretrain(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(_pretraining, "pretrain", counting_pretrain)
    return calls


@pytest.fixture
def rgb_images():
    """Small uint8 RGB images cut from scikit-learn's sample photos."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(0)
    crops = []
    for _ in range(24):
        photo = photos[rng.integers(len(photos))]
        top = rng.integers(photo.shape[0] - 12)
        left = rng.integers(photo.shape[1] - 10)
        crops.append(photo[top : top + 12, left : left + 10])
    return np.stack(crops)


def _png_header(width, height):
    """A PNG file that is all header: it claims ``width`` x ``height`` pixels and holds none."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def _flip_bits(data, rng, n_bits):
    data = bytearray(data)
    for position in rng.choice(len(data) * 8, size=n_bits, replace=False):
        data[position // 8] ^= 1 << (position % 8)
    return bytes(data)


@pytest.fixture
def fuzzed_folder(tmp_path):
    """A folder of image files made to break a loader, and what must become of each.

    Crops of scikit-learn's sample photos, saved whole, truncated, bit-flipped
    (seeded), empty, under the wrong extension, with a header claiming
    100000 x 100000 pixels, unreadable (unless running as root, who reads
    everything), and symbolic links: a loop, a link to the folder itself, and
    links to a file and a folder outside it. Returns ``(folder, outside,
    expected)`` where ``expected`` maps each file's path to ``"loaded"``,
    ``"either"`` (loaded or skipped) or the pattern of the reason it is
    skipped for.
    """
    from io import BytesIO

    from PIL import Image
    from sklearn.datasets import load_sample_images

    folder, outside = tmp_path / "collection", tmp_path / "elsewhere"
    folder.mkdir()
    (outside / "folder").mkdir(parents=True)
    rng = np.random.default_rng(0)
    photos = load_sample_images().images
    encoded = {}
    for i, kind in enumerate(["PNG", "JPEG"] * 4):
        photo = photos[i % 2]
        top, left = rng.integers(photo.shape[0] - 24), rng.integers(photo.shape[1] - 32)
        buffer = BytesIO()
        Image.fromarray(photo[top : top + 24, left : left + 32]).save(buffer, format=kind)
        encoded[f"photo_{i}.{'png' if kind == 'PNG' else 'jpg'}"] = buffer.getvalue()
    expected = {}

    def write(name, data, outcome, where=folder):
        (where / name).write_bytes(data)
        expected[str(where / name)] = outcome

    for name, data in encoded.items():
        write(name, data, "loaded")
    png, jpeg = encoded["photo_0.png"], encoded["photo_1.jpg"]
    write("png_named.jpg", png, "loaded")
    write("truncated.jpg", jpeg[: len(jpeg) // 2], "[Tt]runcated")
    write("header_only.png", png[:40], "truncated|cannot identify")
    write("empty.png", b"", r"empty \(0 bytes\)")
    write("notes.png", b"not an image, whatever the name says\n", "cannot identify")
    write("huge.png", _png_header(100_000, 100_000), "exceeds limit.*MAX_IMAGE_PIXELS")
    for i in range(6):
        write(f"flipped_{i}.png", _flip_bits(png, rng, 1 + i), "either")
        write(f"flipped_{i}.jpg", _flip_bits(jpeg, rng, 1 + i), "either")
    if getattr(os, "geteuid", lambda: -1)() != 0:
        write("secret.png", png, "Permission denied")
        (folder / "secret.png").chmod(0)
    os.symlink("loop.png", folder / "loop.png")
    expected[str(folder / "loop.png")] = "Too many levels of symbolic links"
    os.symlink(".", folder / "again")
    write("outside.png", encoded["photo_2.png"], "loaded", where=outside)
    os.symlink(outside / "outside.png", folder / "outside_link.png")
    expected[str(folder / "outside_link.png")] = expected.pop(str(outside / "outside.png"))
    write("inside.jpg", encoded["photo_3.jpg"], "loaded", where=outside / "folder")
    os.symlink(outside / "folder", folder / "linked_folder")
    expected[str(folder / "linked_folder" / "inside.jpg")] = expected.pop(str(outside / "folder" / "inside.jpg"))
    yield folder, outside, expected
    if (folder / "secret.png").exists():
        (folder / "secret.png").chmod(0o644)
