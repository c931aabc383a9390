"""The convolutional autoencoder: the paper's architecture, any image shape."""

import pytest
import torch
from torch import nn

from skdcec._autoencoder import ConvAutoencoder


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


def test_padding_does_not_leak_into_the_embedding_of_real_pixels():
    """Padding is fixed zeros: changing the input changes the embedding, padding cannot."""
    model = ConvAutoencoder((5, 7, 1), embedding_dim=3)
    assert (model.padded_height, model.padded_width) == (8, 8)
    x = torch.randn(1, 1, 5, 7)
    torch.testing.assert_close(model.encode(x), model.encoder(nn.functional.pad(x, (0, 1, 0, 3))))


@pytest.mark.parametrize("activation, cls", [("relu", nn.ReLU), ("elu", nn.ELU), ("leaky_relu", nn.LeakyReLU)])
def test_activation_is_used_in_hidden_layers(activation, cls):
    """The chosen activation follows every hidden layer, none follows the output."""
    model = ConvAutoencoder((16, 16, 1), activation=activation)
    assert sum(isinstance(m, cls) for m in model.encoder) == 3
    assert sum(isinstance(m, cls) for m in model.decoder) == 3


def test_filters_set_depth_and_padding():
    """Two filters mean two stride-2 layers and padding to a multiple of 4."""
    model = ConvAutoencoder((6, 6, 1), filters=(8, 16))
    assert (model.padded_height, model.padded_width) == (8, 8)
    assert model(torch.randn(3, 1, 6, 6))[1].shape == (3, 1, 6, 6)
