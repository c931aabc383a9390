"""The autoencoders: the convolutional one of the paper, any image shape; the dense one of DEC."""

import pytest
import torch
from torch import nn

from skdcec._autoencoder import ConvAutoencoder, DenseAutoencoder


def test_architecture_is_the_papers():
    """conv5x5/32 -> conv5x5/64 -> conv3x3/128, stride 2, linear embedding, linear output."""
    model = ConvAutoencoder((28, 28, 1))
    convs = [m for m in model.encoder if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (32, (5, 5), (2, 2)),
        (64, (5, 5), (2, 2)),
        (128, (3, 3), (2, 2)),
    ]
    assert isinstance(model.encoder[-1], nn.Linear) and model.encoder[-1].out_features == 10
    deconvs = [m for m in model.decoder if isinstance(m, nn.ConvTranspose2d)]
    assert [(d.out_channels, d.kernel_size) for d in deconvs] == [(64, (3, 3)), (32, (5, 5)), (1, (5, 5))]
    assert isinstance(model.decoder[-1], nn.ConvTranspose2d), "the reconstruction must be linear"
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.Dropout, nn.MaxPool2d)) for m in model.modules())


@pytest.mark.parametrize(
    "shape", [(28, 28, 1), (8, 8, 1), (37, 53, 1), (1, 17, 1), (17, 1, 1), (1, 1, 1), (12, 10, 3), (128, 128, 3)]
)
def test_reconstruction_has_the_input_shape(shape):
    """Any height x width (odd, strips, RGB) reconstructs to exactly its own shape."""
    height, width, channels = shape
    model = ConvAutoencoder(shape, embedding_dim=4)
    x = torch.randn(2, channels, height, width)
    z, reconstruction = model(x)
    assert z.shape == (2, 4)
    assert reconstruction.shape == x.shape


def _feature_map_sides(model, x):
    """(height, width) of the output of every convolution, encoder then decoder."""
    sides = []
    hooks = [
        m.register_forward_hook(lambda module, args, out: sides.append(tuple(out.shape[2:])))
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    ]
    model(x)
    for hook in hooks:
        hook.remove()
    return sides


@pytest.mark.parametrize(
    "shape, expected",
    [
        ((28, 28, 1), [(14, 14), (7, 7), (4, 4), (7, 7), (14, 14), (28, 28)]),
        ((5, 7, 1), [(3, 4), (2, 2), (1, 1), (2, 2), (3, 4), (5, 7)]),
        ((1, 17, 1), [(1, 9), (1, 5), (1, 3), (1, 5), (1, 9), (1, 17)]),
        ((16, 16, 1), [(8, 8), (4, 4), (2, 2), (4, 4), (8, 8), (16, 16)]),
    ],
)
def test_the_network_computes_on_the_real_pixels_only(shape, expected):
    """Each convolution halves the real sides (rounding up), each mirror restores them exactly.

    No layer works on padding beyond its own kernel's: a 28 x 28 image is not
    padded to 32 x 32 first, which would cost 31 % more arithmetic.
    """
    height, width, channels = shape
    model = ConvAutoencoder(shape, embedding_dim=3)
    assert _feature_map_sides(model, torch.randn(2, channels, height, width)) == expected


def test_every_pixel_of_the_input_reaches_the_embedding_and_the_reconstruction():
    """The bottom-right pixel of an odd-sized image moves the embedding and is reconstructed."""
    torch.manual_seed(0)
    model = ConvAutoencoder((5, 7, 1), embedding_dim=3)
    x = torch.randn(1, 1, 5, 7, requires_grad=True)
    z, reconstruction = model(x)
    (z.sum() + reconstruction[0, 0, -1, -1]).backward()
    assert x.grad[0, 0, -1, -1] != 0
    assert reconstruction.shape == x.shape


@pytest.mark.parametrize("activation, cls", [("relu", nn.ReLU), ("elu", nn.ELU), ("leaky_relu", nn.LeakyReLU)])
def test_activation_is_used_in_hidden_layers(activation, cls):
    """The chosen activation follows every hidden layer, none follows the output."""
    model = ConvAutoencoder((16, 16, 1), activation=activation)
    assert sum(isinstance(m, cls) for m in model.encoder) == 3
    assert sum(isinstance(m, cls) for m in model.decoder) == 3


def test_filters_set_depth():
    """Two filters mean two stride-2 layers: 6 x 6 -> 3 x 3 -> 2 x 2 and back to 6 x 6."""
    model = ConvAutoencoder((6, 6, 1), filters=(8, 16))
    assert model.feature_shape == (16, 2, 2)
    assert model(torch.randn(3, 1, 6, 6))[1].shape == (3, 1, 6, 6)


def test_dense_architecture_is_decs():
    """d-500-500-2000-10 with ReLU, a linear embedding, the mirrored decoder and a linear output."""
    model = DenseAutoencoder((1, 1280, 1))
    encoder = [(m.in_features, m.out_features) for m in model.encoder if isinstance(m, nn.Linear)]
    decoder = [(m.in_features, m.out_features) for m in model.decoder if isinstance(m, nn.Linear)]
    assert encoder == [(1280, 500), (500, 500), (500, 2000), (2000, 10)]
    assert decoder == [(10, 2000), (2000, 500), (500, 500), (500, 1280)]
    assert isinstance(model.encoder[-1], nn.Linear), "the embedding must be linear"
    assert not isinstance(model.decoder[-2], nn.ReLU), "the reconstruction must be linear"
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == 6


@pytest.mark.parametrize("hidden_layers", [(500, 500, 2000), (64,), ()])
@pytest.mark.parametrize("shape", [(1, 37, 1), (4, 5, 3)])
def test_dense_reconstruction_has_the_input_shape(shape, hidden_layers):
    """The NCHW batches of the data pipeline come back in their own shape, for any depth."""
    height, width, channels = shape
    model = DenseAutoencoder(shape, hidden_layers, embedding_dim=3)
    x = torch.randn(5, channels, height, width)
    z, reconstruction = model(x)
    assert z.shape == (5, 3)
    assert reconstruction.shape == x.shape
    assert model.image_shape == shape


def test_dense_encoder_sees_every_value():
    """Every input value reaches the embedding: the gradient of z is nonzero everywhere."""
    model = DenseAutoencoder((1, 20, 1), (8,), embedding_dim=2, activation="elu")
    x = torch.randn(1, 1, 1, 20, requires_grad=True)
    model.encode(x).sum().backward()
    assert (x.grad != 0).all()


def test_dense_input_dropout_denoises_in_training_only():
    """input_dropout zeroes inputs in training mode, never in eval mode, and adds no weights."""
    torch.manual_seed(0)
    model = DenseAutoencoder((1, 200, 1), (), embedding_dim=200, input_dropout=0.5)
    with torch.no_grad():
        model.encoder[1].weight.copy_(torch.eye(200))
        model.encoder[1].bias.zero_()
    x = torch.ones(4, 1, 1, 200)
    seen = model.encode(x)
    assert 0.3 < (seen == 0).float().mean() < 0.7
    assert set(seen[seen != 0].tolist()) == {2.0}, "kept values are scaled up by 1 / (1 - p)"
    torch.testing.assert_close(model.eval().encode(x), x.reshape(4, 200))
    assert model.state_dict().keys() == DenseAutoencoder((1, 200, 1), (), embedding_dim=200).state_dict().keys()
