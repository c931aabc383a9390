"""Random image augmentation on the training device, for DEC-DA-style training."""

import math

import torch
from torch.nn import functional as F

GRAY_DEFAULTS = ("shift", "rotate")
COLOR_DEFAULTS = ("shift", "rotate", "flip", "crop", "jitter")
AUGMENTATIONS = frozenset(COLOR_DEFAULTS)

# Ranges of DEC-DA (Guo et al., 2018), plus mild ones for colour photographs.
MAX_SHIFT = 0.1  # fraction of the side
MAX_ROTATION_DEGREES = 10.0
MIN_CROP_SCALE = 0.8  # smallest side kept by a random resized crop
JITTER = 0.1  # brightness, contrast and saturation: factors in [1 - JITTER, 1 + JITTER]


def resolve_augmentations(augment, n_channels):
    """The augmentations to apply, as a frozenset of names.

    Parameters
    ----------
    augment : bool or iterable of str
        ``False`` for none, ``True`` for the defaults (shifts and rotations;
        for colour images also flips, resized crops and colour jitter), or the
        names to apply.
    n_channels : int
        Channels of the images; flips, crops and jitter are colour defaults.

    Returns
    -------
    frozenset of str
    """
    if augment is False:
        return frozenset()
    if augment is True:
        return frozenset(COLOR_DEFAULTS if n_channels == 3 else GRAY_DEFAULTS)
    return frozenset(augment)


def augment_batch(images, augmentations, generator):
    """Randomly transform a batch of NCHW images, each image on its own draw.

    Shifts (up to 10 % of the side), rotations (up to 10 degrees), horizontal
    flips and random resized crops are one affine warp per image through
    :func:`~torch.nn.functional.affine_grid` and
    :func:`~torch.nn.functional.grid_sample`, with borders filled by the edge
    pixels as in DEC-DA. Colour jitter scales brightness, contrast and
    saturation by factors near one.

    Parameters
    ----------
    images : torch.Tensor of shape (batch, channels, height, width)
        Clean images.
    augmentations : frozenset of str
        Names from ``{"shift", "rotate", "flip", "crop", "jitter"}``.
    generator : torch.Generator
        Source of randomness, on the images' device.

    Returns
    -------
    torch.Tensor
        Augmented images of the same shape, dtype and device.
    """
    if not augmentations:
        return images
    n = images.shape[0]
    device = images.device

    def uniform(low, high):
        return torch.rand(n, device=device, generator=generator) * (high - low) + low

    warp = augmentations & {"shift", "rotate", "flip", "crop"}
    if warp:
        ones = torch.ones(n, device=device)
        zeros = torch.zeros(n, device=device)
        angle = uniform(-1, 1) * math.radians(MAX_ROTATION_DEGREES) if "rotate" in warp else zeros
        # affine_grid works in [-1, 1] coordinates: a shift of 10 % of the side is 0.2.
        shift_x = uniform(-2 * MAX_SHIFT, 2 * MAX_SHIFT) if "shift" in warp else zeros
        shift_y = uniform(-2 * MAX_SHIFT, 2 * MAX_SHIFT) if "shift" in warp else zeros
        scale = uniform(MIN_CROP_SCALE, 1.0) if "crop" in warp else ones
        if "crop" in warp:
            # A crop of side `scale` sits anywhere inside the image.
            shift_x = shift_x + uniform(-1, 1) * (1 - scale)
            shift_y = shift_y + uniform(-1, 1) * (1 - scale)
        flip = torch.where(uniform(0, 1) < 0.5, -ones, ones) if "flip" in warp else ones
        cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
        # affine_grid's [-1, 1] coordinates stretch x by the width and y by the
        # height: a rotation in pixels takes the aspect ratio into its off-diagonal
        # terms, else it would shear a non-square image.
        height, width = images.shape[-2:]
        theta = torch.stack(
            [
                torch.stack([cos * flip, -sin * (height / width), shift_x], dim=1),
                torch.stack([sin * flip * (width / height), cos, shift_y], dim=1),
            ],
            dim=1,
        )
        grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
        images = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if "jitter" in augmentations:
        images = _jitter(images, uniform)
    return images


def _jitter(images, uniform):
    def factor():
        return uniform(1 - JITTER, 1 + JITTER).view(-1, 1, 1, 1)

    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = (images - mean) * factor() + mean * factor()
    if images.shape[1] == 3:
        gray = images.mean(dim=1, keepdim=True)
        images = (images - gray) * factor() + gray
    return images
