"""The autoencoders: DCEC's convolutional one (Guo et al., 2017) and DEC's dense one for vectors."""

import math

from torch import nn
from torch.nn import functional as F

ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU}


class Autoencoder(nn.Module):
    """What both autoencoders share: encode, decode and forward over their ``encoder`` and ``decoder``."""

    def encode(self, x):
        """Embed a batch of images.

        Parameters
        ----------
        x : torch.Tensor of shape (batch, channels, height, width)
            Images.

        Returns
        -------
        torch.Tensor of shape (batch, embedding_dim)
        """
        return self.encoder(x)

    def decode(self, z):
        """Decode embeddings to the input's shape (images at their real size).

        Parameters
        ----------
        z : torch.Tensor of shape (batch, embedding_dim)
            Embeddings.

        Returns
        -------
        torch.Tensor of shape (batch, channels, height, width)
        """
        return self.decoder(z)

    def forward(self, x):
        """Embed and reconstruct a batch.

        Parameters
        ----------
        x : torch.Tensor of shape (batch, channels, height, width)
            Images.

        Returns
        -------
        embedding : torch.Tensor of shape (batch, embedding_dim)
        reconstruction : torch.Tensor of shape (batch, channels, height, width)
        """
        z = self.encode(x)
        return z, self.decode(z)


class ConvAutoencoder(Autoencoder):
    """Stride-2 convolutional encoder, linear embedding and mirrored decoder.

    The encoder is ``conv5x5/f0 -> conv5x5/f1 -> ... -> conv3x3/f_last``, every
    convolution with stride 2 and the chosen activation, then a *linear* dense
    layer to the embedding. The decoder mirrors it: dense (with activation)
    back to the last feature map, transposed convolutions with stride 2 and a
    linear output layer. There is no pooling, normalisation or dropout.

    Any ``height x width`` works, 1 x n strips included. Every convolution
    pads its input symmetrically by half its kernel, so it maps a side ``s``
    to ``ceil(s / 2)``; the transposed convolution that mirrors it adds the
    one row or column (``output_padding``) that takes ``ceil(s / 2)`` back to
    exactly ``s``. The network thus computes on the real pixels only, and the
    reconstruction has the input's size without cropping: a 28 x 28 image
    costs 28 x 28 pixels of work, not the 32 x 32 of padding every side to a
    multiple of ``2 ** len(filters)``.

    Parameters
    ----------
    image_shape : tuple of int
        ``(height, width, channels)`` of the images.
    filters : tuple of int, default=(32, 64, 128)
        Output channels of the encoder's convolutions.
    embedding_dim : int, default=10
        Size of the embedding.
    activation : {"relu", "elu", "leaky_relu"}, default="relu"
        Non-linearity after every hidden layer.
    """

    def __init__(self, image_shape, filters=(32, 64, 128), embedding_dim=10, activation="relu"):
        super().__init__()
        height, width, channels = image_shape
        self.image_shape = (int(height), int(width), int(channels))
        heights = _halved_sides(self.image_shape[0], len(filters))
        widths = _halved_sides(self.image_shape[1], len(filters))
        self.feature_shape = (filters[-1], heights[-1], widths[-1])
        kernels = [5] * (len(filters) - 1) + [3]
        act = ACTIVATIONS[activation]

        encoder = []
        in_channels = channels
        for out_channels, kernel in zip(filters, kernels):
            encoder += [nn.Conv2d(in_channels, out_channels, kernel, stride=2, padding=kernel // 2), act()]
            in_channels = out_channels
        encoder += [nn.Flatten(), nn.Linear(math.prod(self.feature_shape), embedding_dim)]
        self.encoder = nn.Sequential(*encoder)

        decoder = [
            nn.Linear(embedding_dim, math.prod(self.feature_shape)),
            act(),
            nn.Unflatten(1, self.feature_shape),
        ]
        out_channels_list = list(reversed(filters[:-1])) + [channels]
        in_channels = filters[-1]
        for i, (out_channels, kernel) in enumerate(zip(out_channels_list, reversed(kernels))):
            # Mirror of encoder layer ``depth``: from its output side back to its input side.
            depth = len(filters) - 1 - i
            output_padding = (
                heights[depth] - (2 * heights[depth + 1] - 1),
                widths[depth] - (2 * widths[depth + 1] - 1),
            )
            decoder.append(
                nn.ConvTranspose2d(
                    in_channels,
                    out_channels,
                    kernel,
                    stride=2,
                    padding=kernel // 2,
                    output_padding=output_padding,
                )
            )
            if i < len(filters) - 1:
                decoder.append(act())
            in_channels = out_channels
        self.decoder = nn.Sequential(*decoder)


class DenseAutoencoder(Autoencoder):
    """Fully connected autoencoder for vectors, as in DEC and DELIUS.

    The encoder is ``d -> h0 -> h1 -> ... -> embedding``, the activation
    after every hidden layer and a *linear* embedding; the decoder mirrors it
    with a linear output. DEC (Xie et al., 2016) and DELIUS (Castellano &
    Vessio, 2022, on pretrained CNN features of paintings) use hidden widths
    ``(500, 500, 2000)``.

    It takes the tensors the data pipeline delivers for rows of ``d`` values,
    single-channel ``1 x d`` images of shape ``(batch, 1, 1, d)``, flattens
    them and reconstructs the same shape, so that one set of training loops
    serves both autoencoders.

    With ``input_dropout`` it is a denoising autoencoder, as DEC's stacked
    autoencoder was: in training mode the encoder sees the input with that
    fraction of its values zeroed (the rest scaled up to keep the mean) and
    the decoder reconstructs the clean input from it. Evaluation mode never
    drops a value.

    Parameters
    ----------
    image_shape : tuple of int
        ``(height, width, channels)`` of the batches' images; the vectors have
        ``height * width * channels`` values (``(1, d, 1)`` for rows of ``d``).
    hidden_layers : tuple of int, default=(500, 500, 2000)
        Widths of the encoder's hidden layers; the decoder mirrors them.
    embedding_dim : int, default=10
        Size of the embedding.
    activation : {"relu", "elu", "leaky_relu"}, default="relu"
        Non-linearity after every hidden layer.
    input_dropout : float, default=0.0
        Fraction of the input values zeroed in training mode, in ``[0, 1)``.
        It has no weights: networks that differ only in it share their
        state dicts.
    """

    def __init__(
        self,
        image_shape,
        hidden_layers=(500, 500, 2000),
        embedding_dim=10,
        activation="relu",
        input_dropout=0.0,
    ):
        super().__init__()
        height, width, channels = image_shape
        self.image_shape = (int(height), int(width), int(channels))
        self.input_dropout = float(input_dropout)
        act = ACTIVATIONS[activation]
        widths = [math.prod(self.image_shape), *hidden_layers]

        encoder = [nn.Flatten()]
        for n_in, n_out in zip(widths[:-1], widths[1:]):
            encoder += [nn.Linear(n_in, n_out), act()]
        encoder.append(nn.Linear(widths[-1], embedding_dim))
        self.encoder = nn.Sequential(*encoder)

        decoder = []
        for n_in, n_out in zip([embedding_dim, *reversed(widths[2:])], reversed(widths[1:])):
            decoder += [nn.Linear(n_in, n_out), act()]
        decoder += [
            nn.Linear(widths[1] if len(widths) > 1 else embedding_dim, widths[0]),
            nn.Unflatten(1, (self.image_shape[2], self.image_shape[0], self.image_shape[1])),
        ]
        self.decoder = nn.Sequential(*decoder)

    def encode(self, x):
        """Embed a batch of vectors.

        Parameters
        ----------
        x : torch.Tensor of shape (batch, channels, height, width)
            Vectors laid out as images.

        Returns
        -------
        torch.Tensor of shape (batch, embedding_dim)
        """
        if self.training and self.input_dropout:
            x = F.dropout(x, self.input_dropout)
        return self.encoder(x)


def _halved_sides(side, depth):
    """Sides of the feature maps of ``depth`` stride-2 convolutions, the input's first."""
    sides = [side]
    for _ in range(depth):
        sides.append(math.ceil(sides[-1] / 2))
    return sides
