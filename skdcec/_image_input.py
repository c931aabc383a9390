"""Checks of image input shared by the clusterer and the feature front end: dtype, values, layout."""

import math
from numbers import Integral

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import validate_data

# Bytes of input checked at a time for NaN, infinity and range.
VALUE_CHECK_BYTES = 2**24
# The networks compute in float32: larger inputs would overflow on the way in.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_dtype(X):
    """Refuse complex and text arrays; turn object arrays of numbers into floats.

    Parameters
    ----------
    X : array-like
        The input.

    Returns
    -------
    array-like
        ``X``, or a float64 array for an object array of numbers.
    """
    dtype = getattr(X, "dtype", None)
    if not isinstance(dtype, np.dtype):
        return X
    if dtype.kind == "c":
        raise ValueError(
            f"Complex data not supported: X has dtype {dtype}, but images are real. Pass np.abs(X) or X.real."
        )
    if dtype.kind in "USV":
        raise ValueError(
            f"X has dtype {dtype}, which holds text or raw bytes, not pixel values; "
            "pass images as numbers: uint8 pixels or floats."
        )
    if dtype.kind == "O":
        try:
            return np.asarray(X, dtype=np.float64)
        except ValueError as exc:
            # A TypeError (an element that is no string or number) passes
            # through as NumPy words it.
            raise ValueError(
                f"X has dtype object and holds values that are not numbers ({exc}); "
                "pass images as numbers: uint8 pixels or floats."
            ) from exc
    return X


def images_as_rows(X):
    """``X`` with one row per image, and the images' ``(height, width, channels)`` when ``X`` shows it.

    Parameters
    ----------
    X : array-like
        2-D rows, 3-D grayscale or 4-D channels-last images; nested lists are
        arrays too.

    Returns
    -------
    rows : array-like
        ``X`` itself when 2-D, else reshaped (a view where NumPy can) to
        ``(n_samples, height * width * channels)``.
    image_shape : tuple of int or None
        ``(height, width, channels)`` for 3-D and 4-D ``X``, None for 2-D.
    ndim : int
        The number of dimensions of ``X``.
    """
    if getattr(X, "ndim", None) is None:
        X = np.asarray(X)
    X = check_dtype(X)
    ndim = X.ndim
    if ndim < 2:
        # The start of the message is scikit-learn's own.
        raise ValueError(
            f"Expected 2D array, got {ndim}D array instead. Reshape your data to one image "
            "per row: (n_samples, n_features), (n_samples, height, width) or (n_samples, "
            "height, width, channels); X.reshape(1, -1) makes one flattened image a row."
        )
    if ndim > 4:
        raise ValueError(
            f"X has {ndim} dimensions; pass (n_samples, n_features), "
            "(n_samples, height, width) or (n_samples, height, width, channels)."
        )
    if ndim == 2:
        return X, None, ndim
    image_shape = tuple(X.shape[1:]) if ndim == 4 else (*X.shape[1:], 1)
    if 0 in image_shape:
        raise ValueError(
            f"X holds images of shape {tuple(X.shape[1:])}, which have no pixels; "
            "pass images whose height, width and channels are at least 1."
        )
    return np.reshape(X, (X.shape[0], math.prod(image_shape))), image_shape, ndim


def complete_shape(image_shape):
    """``(height, width)`` or ``(height, width, channels)`` as ``(height, width, channels)``.

    Parameters
    ----------
    image_shape : tuple of int
        A user's image shape.

    Returns
    -------
    tuple of int
    """
    return (*image_shape, 1) if len(image_shape) == 2 else tuple(image_shape)


def check_image_shape(image_shape, n_features):
    """The user's ``image_shape`` for rows of ``n_features`` values, checked and completed.

    Parameters
    ----------
    image_shape : tuple of int
        ``(height, width)`` or ``(height, width, channels)``.
    n_features : int
        Values per row.

    Returns
    -------
    tuple of int
        ``(height, width, channels)``.
    """
    shape = tuple(image_shape)
    if len(shape) not in (2, 3) or not all(isinstance(s, Integral) and s > 0 for s in shape):
        raise ValueError(
            f"image_shape={image_shape!r} must be (height, width) or "
            "(height, width, channels) of positive ints."
        )
    shape = complete_shape(shape)
    if math.prod(shape) != n_features:
        raise ValueError(
            f"image_shape={image_shape!r} holds {math.prod(shape)} values but X has "
            f"n_features={n_features}; pass the shape of one image, whose height * width * "
            "channels equals n_features."
        )
    return shape


def check_values(X):
    """Raise a ValueError naming the first row of ``X`` with NaN, infinity or an out-of-range value.

    ``X`` is read in chunks, so a memory-mapped collection is never copied whole.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Validated rows.
    """
    if X.dtype == np.uint8:
        return
    rows_per_chunk = max(1, VALUE_CHECK_BYTES // max(1, X.itemsize * X.shape[1]))
    for start in range(0, X.shape[0], rows_per_chunk):
        chunk = np.asarray(X[start : start + rows_per_chunk])
        # Comparisons with NaN are false: one test covers NaN, infinity and range.
        if -FLOAT32_MAX <= chunk.min() and chunk.max() <= FLOAT32_MAX:
            continue
        for offset, row in enumerate(chunk):
            if np.isnan(row).any():
                problem = "NaN"
            elif np.isinf(row).any():
                problem = "infinity"
            elif np.abs(row).max() > FLOAT32_MAX:
                raise ValueError(
                    f"Input X holds a value of magnitude {np.abs(row).max():.3g} in row "
                    f"{start + offset}, beyond the float32 range (+-{FLOAT32_MAX:.3g}) the "
                    "network computes in. Divide X by a constant: inputs are standardised, "
                    "so the clustering does not depend on their scale."
                )
            else:
                continue
            raise ValueError(
                f"Input X contains {problem} in row {start + offset}. Images must be finite "
                "numbers: drop those rows, or replace the values (np.nan_to_num, or "
                "sklearn.impute.SimpleImputer in a pipeline)."
            )


def check_input_kind(dtype, fitted_dtype):
    """Refuse uint8 images for a model fitted on floats, and floats for one fitted on uint8.

    The two are scaled differently (uint8 divided by 255, floats
    standardised with the training statistics): a mix-up would give wrong
    labels without a word.

    Parameters
    ----------
    dtype : numpy.dtype
        The input's dtype.
    fitted_dtype : numpy.dtype
        The training images' dtype.
    """
    fitted_uint8 = np.dtype(fitted_dtype) == np.uint8
    if (np.dtype(dtype) == np.uint8) == fitted_uint8:
        return
    if fitted_uint8:
        raise ValueError(
            f"X has dtype {dtype} but the model was fitted on uint8 pixels (0-255), which it "
            "scales differently; pass uint8 images, e.g. np.rint(X * 255).astype(np.uint8) for "
            "floats in [0, 1]."
        )
    raise ValueError(
        f"X has dtype uint8 but the model was fitted on {np.dtype(fitted_dtype)} images, "
        "which it standardises with their training statistics; pass the same kind of values "
        "as in fit, e.g. X.astype(np.float32) (and the same scale, such as / 255, if fit had it)."
    )


def shape_mismatch(nd_shape, fitted):
    """Say how images of ``nd_shape`` differ from the training images of shape ``fitted``, and the fix.

    Parameters
    ----------
    nd_shape, fitted : tuple of int
        ``(height, width, channels)``.

    Returns
    -------
    str
    """
    if nd_shape[2] != fitted[2]:
        color = {1: " (load_images(color='gray'))", 3: " (load_images(color='rgb'))"}.get(fitted[2], "")
        fix = f"convert the images to {fitted[2]} channel(s){color}"
    else:
        fix = f"resize the images to the training shape, {fitted[0]}x{fitted[1]}"
    return f"X holds images of shape {nd_shape} but the model was fitted on {fitted}; {fix}."


class ImageInputMixin:
    """``_validate_images`` for an estimator with an ``image_shape`` parameter, fitted on images.

    Fitted, the estimator has ``image_shape_``, ``n_features_in_`` and
    ``_input_dtype``.
    """

    def _validate_images(self, X, *, record_on=None):
        """Validate ``X``; return it 2-D, with its image shape and ndim.

        ``record_on`` is the estimator on which ``validate_data`` records the
        features of ``X`` when fitting (a blank twin, so that an interrupted
        fit leaves this estimator as it was); ``None`` checks ``X`` against the
        features recorded on this fitted estimator.
        """
        reset = record_on is not None
        X, nd_shape, ndim = images_as_rows(X)
        if nd_shape is not None and not reset and nd_shape != self.image_shape_:
            raise ValueError(shape_mismatch(nd_shape, self.image_shape_))
        if ndim == 2 and not reset and not sp.issparse(X) and X.shape[1] != self.n_features_in_:
            # The start of the message is scikit-learn's own.
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input: one flattened image of shape "
                f"{self.image_shape_} per row. Resize the images to the training shape."
            )
        X = validate_data(
            record_on if reset else self,
            X,
            reset=reset,
            dtype=[np.float64, np.float32, np.uint8],
            ensure_min_samples=1,
            ensure_all_finite=False,
        )
        check_values(X)
        if not reset:
            check_input_kind(X.dtype, self._input_dtype)
            return X, self.image_shape_, ndim
        if nd_shape is not None:
            if self.image_shape is not None and complete_shape(self.image_shape) != nd_shape:
                raise ValueError(
                    f"image_shape={self.image_shape!r} does not match the shape of the "
                    f"images in X, {nd_shape}; leave image_shape=None for 3-D or 4-D X."
                )
            return X, nd_shape, ndim
        return X, self._plan_image_shape(X.shape[1]), 2

    def _plan_image_shape(self, n_features):
        if self.image_shape is None:
            side = math.isqrt(n_features)
            return (side, side, 1) if side * side == n_features else (1, n_features, 1)
        return check_image_shape(self.image_shape, n_features)
