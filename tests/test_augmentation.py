"""Random augmentation: ranges, per-image draws, reproducibility, no effect when off."""

import math

import pytest
import torch

from skdcec._augmentation import AUGMENTATIONS, augment_batch, resolve_augmentations


def _generator(seed=0):
    return torch.Generator().manual_seed(seed)


def _square(size=32):
    """A bright square in the middle of a dark image, NCHW."""
    image = torch.zeros(1, 1, size, size)
    image[..., size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1.0
    return image


def test_defaults_depend_on_colour():
    """True means shifts and rotations; colour images add flips, crops and jitter."""
    assert resolve_augmentations(True, 1) == {"shift", "rotate"}
    assert resolve_augmentations(True, 3) == AUGMENTATIONS
    assert resolve_augmentations(False, 3) == frozenset()
    assert resolve_augmentations(("flip",), 1) == {"flip"}


def test_no_augmentation_returns_the_batch_itself():
    """With nothing selected, the batch passes through untouched."""
    images = torch.rand(4, 1, 8, 8)
    assert augment_batch(images, frozenset(), _generator()) is images


def test_shift_moves_the_centre_of_mass_by_at_most_ten_percent():
    """Shifts displace content by up to 10 % of the side, and differ per image."""
    images = _square().repeat(64, 1, 1, 1)
    shifted = augment_batch(images, frozenset({"shift"}), _generator())
    coords = torch.arange(32.0)
    centre_x = (shifted.sum(dim=2) * coords).sum(dim=(1, 2)) / shifted.sum(dim=(1, 2, 3))
    offset = centre_x - 15.5
    assert offset.abs().max() <= 0.1 * 32 + 0.5
    assert offset.std() > 0.5, "every image must get its own shift"


def test_rotation_keeps_mass_and_stays_within_ten_degrees():
    """A rotated square keeps its area, and its corners move as for angles up to 10 degrees."""
    images = _square(64).repeat(32, 1, 1, 1)
    rotated = augment_batch(images, frozenset({"rotate"}), _generator())
    area = rotated.sum(dim=(1, 2, 3))
    torch.testing.assert_close(area, images.sum(dim=(1, 2, 3)), rtol=0.03, atol=0)
    changed = (rotated - images).abs().sum(dim=(1, 2, 3))
    # A 32-pixel square rotated by 10 degrees changes at most about 4 * 16^2 * tan(10 deg) pixels.
    assert changed.max() <= 4 * 16**2 * math.tan(math.radians(10)) * 1.2
    assert (changed > 0).all()


def test_flip_mirrors_about_half_the_images():
    """Horizontal flips mirror an image exactly, for roughly half of a large batch."""
    image = torch.rand(1, 3, 8, 8)
    images = image.repeat(200, 1, 1, 1)
    flipped = augment_batch(images, frozenset({"flip"}), _generator())
    mirrored = torch.isclose(flipped, image.flip(-1), atol=1e-5).flatten(1).all(dim=1)
    unchanged = torch.isclose(flipped, image, atol=1e-5).flatten(1).all(dim=1)
    assert (mirrored | unchanged).all()
    assert 60 < mirrored.sum() < 140


def test_jitter_keeps_colour_images_near_the_original():
    """Colour jitter changes pixel values by a bounded, mild amount."""
    images = torch.rand(16, 3, 8, 8)
    jittered = augment_batch(images, frozenset({"jitter"}), _generator())
    assert not torch.equal(images, jittered)
    assert (jittered - images).abs().mean() < 0.15


@pytest.mark.parametrize("names", [("shift", "rotate"), tuple(sorted(AUGMENTATIONS))])
def test_same_generator_seed_same_augmentation(names):
    """Draws come only from the generator: the same seed gives the same batch."""
    images = torch.rand(8, 3, 16, 12)
    first = augment_batch(images, frozenset(names), _generator(3))
    second = augment_batch(images, frozenset(names), _generator(3))
    third = augment_batch(images, frozenset(names), _generator(4))
    assert torch.equal(first, second)
    assert not torch.equal(first, third)
    assert first.shape == images.shape


@pytest.mark.parametrize("height, width", [(16, 48), (48, 16), (32, 32)])
def test_rotation_keeps_distances_on_non_square_images(monkeypatch, height, width):
    """A rotated dot stays at its distance from the centre, in pixels, whatever the aspect ratio."""
    from skdcec import _augmentation

    monkeypatch.setattr(_augmentation, "MAX_ROTATION_DEGREES", 90.0)
    images = torch.zeros((16, 1, height, width))
    # A 2x2 dot whose centre lies 6 pixels right of the image centre.
    images[:, :, height // 2 - 1 : height // 2 + 1, width // 2 + 5 : width // 2 + 7] = 1.0
    rotated = augment_batch(images, frozenset({"rotate"}), torch.Generator().manual_seed(0))
    rows = torch.arange(height, dtype=torch.float32).view(-1, 1) + 0.5 - height / 2
    cols = torch.arange(width, dtype=torch.float32).view(1, -1) + 0.5 - width / 2
    mass = rotated[:, 0].sum(dim=(1, 2))
    y = (rotated[:, 0] * rows).sum(dim=(1, 2)) / mass
    x = (rotated[:, 0] * cols).sum(dim=(1, 2)) / mass
    torch.testing.assert_close(torch.hypot(x, y), torch.full((16,), 6.0), atol=0.3, rtol=0)
