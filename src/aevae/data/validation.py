"""Checks that turn bad arrays into one-line DataError messages."""

from __future__ import annotations

import math

import numpy as np

from .errors import DataError

# Likelihoods whose support is [0, 1].
UNIT_INTERVAL_LIKELIHOODS = frozenset({"bernoulli", "continuous-bernoulli"})

LAYOUT_HINT = "(N, D) tabular, (N, H, W) or (N, C, H, W) images"


def _as_numpy(x) -> np.ndarray:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        torch = None
    if torch is not None and isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def validate_array(x, *, name: str = "data", likelihood: str | None = None,
                   check_rounding: bool = True) -> np.ndarray:
    """Check ``x`` and return it as a float32 C-contiguous array of the same shape.

    Raises DataError for empty data, a non-numeric dtype, fewer than 2 or more than 4
    dimensions, NaN or infinite values, and (for ``likelihood="bernoulli"`` or
    ``"continuous-bernoulli"``) values outside [0, 1]; float64 or large integer values whose
    variation float32 would mostly round away (``check_float32_rounding``, which warns of a
    smaller share; ``check_rounding=False`` for a chunk of a file, checked as a whole).
    """
    try:
        array = _as_numpy(x)
    except (TypeError, ValueError) as error:
        raise DataError(f"{name} is not an array: {error}") from None
    if array.size == 0:
        raise DataError(f"{name} is empty (shape {array.shape})")
    if array.dtype.kind not in "biuf":
        raise DataError(
            f"{name} has non-numeric dtype {array.dtype}; expected numbers (int, uint, float, bool)"
        )
    if array.ndim not in (2, 3, 4):
        raise DataError(
            f"{name} has {array.ndim} dimension(s) with shape {array.shape}; "
            f"expected 2 to 4: {LAYOUT_HINT}"
        )
    # Convert first so that float64 values too large for float32 show up as inf.
    original = array
    with np.errstate(over="ignore"):
        array = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(array)
    if not finite.all():
        not_finite = ~finite
        nan_count = int(np.isnan(array).sum())
        inf_count = int(not_finite.sum()) - nan_count
        first = np.unravel_index(int(np.argmax(not_finite)), array.shape)
        first_index = tuple(int(i) for i in first)
        raise DataError(
            f"{name} contains {nan_count} NaN and {inf_count} infinite value(s); "
            f"the first is at index {first_index} (example {first_index[0]})"
        )
    if check_rounding:
        check_float32_rounding(original, name)
    if likelihood is not None and likelihood.lower() in UNIT_INTERVAL_LIKELIHOODS:
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            looks_8_bit = low >= 0.0 and 1.0 < high <= 255.0
            hint = ("; if these are 8-bit pixels, divide by 255" if looks_8_bit else
                    "; for real-valued data use the gaussian-learned likelihood")
            raise DataError(
                f"{name} has values outside [0, 1] (observed min {low:g}, max {high:g}), "
                f"which the {likelihood.lower()} likelihood needs{hint}"
            )
    return array


# The share of a feature's spread (the rms of the rounding error over its standard deviation)
# that rounding to float32, which every model computes in, may turn to noise: above the first a
# warning, above the second the data is refused (1e8 + a unit spread loses all of it).
FLOAT32_WARN_LOSS = 0.01
FLOAT32_REFUSE_LOSS = 0.5


def float32_rounding(values) -> tuple[int, float, float, float] | None:
    """(feature, its mean, its standard deviation, the share of that spread rounding to float32
    turns to noise) for the feature of ``values`` (an array, or a tensor on any device) that
    loses most; None when none loses any. Only float64 (or wider) and integers beyond 2**24
    can: values such as 1e8 + x vary in digits float32 (about 7 significant) does not keep,
    and standardising after the cast cannot bring them back. Features constant up to float64's
    own rounding (a few steps of its last bit) have nothing to lose. Read in chunks of about
    a million values, so the check costs no copy of the data."""
    import torch

    if isinstance(values, torch.Tensor):
        if values.dtype in (torch.bool, torch.uint8, torch.int8, torch.int16, torch.float16,
                            torch.bfloat16, torch.float32):
            return None
        rows = values.detach()
        if rows.dtype in (torch.int32, torch.int64) and rows.numel() and max(
                abs(int(rows.min())), abs(int(rows.max()))) <= 2 ** 24:
            return None  # every such integer is a float32 exactly

        def chunk(start: int, stop: int) -> np.ndarray:
            return rows[start:stop].to("cpu", torch.float64).numpy()
    else:
        rows = np.asarray(values)
        kind, size = rows.dtype.kind, rows.dtype.itemsize
        if kind not in "iuf" or (kind == "f" and size <= 4) or (kind in "iu" and size <= 2):
            return None
        if kind in "iu" and rows.size and max(abs(int(rows.min())),
                                              abs(int(rows.max()))) <= 2 ** 24:
            return None  # every such integer is a float32 exactly

        def chunk(start: int, stop: int) -> np.ndarray:
            return np.array(rows[start:stop], dtype=np.float64)  # a copy, in native order
    if rows.ndim == 0 or not len(rows):
        return None
    integers = not (rows.dtype.is_floating_point if isinstance(rows, torch.Tensor)
                    else rows.dtype.kind == "f")
    features = math.prod(rows.shape[1:])
    step = max(1, 2 ** 20 // max(features, 1))
    shift = chunk(0, 1).reshape(-1)
    total, squares = np.zeros(features), np.zeros(features)
    errors, largest = np.zeros(features), np.zeros(features)
    for start in range(0, len(rows), step):
        exact = chunk(start, start + step).reshape(-1, features)
        with np.errstate(over="ignore", invalid="ignore"):
            errors += ((exact.astype(np.float32).astype(np.float64) - exact) ** 2).sum(axis=0)
        largest = np.maximum(largest, np.abs(exact).max(axis=0))
        centred = exact - shift
        total += centred.sum(axis=0)
        squares += (centred ** 2).sum(axis=0)
    count = len(rows)
    mean = total / count
    spread = np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))
    # Integers are exact; a float feature varying by a few steps of float64's last bit is
    # constant up to float64's own rounding; one below float32's smallest normal number is 0
    # to every model (codes of 1e-120 decode as zeros), not a spread to protect.
    varies = ((spread > (0.0 if integers else 8 * np.finfo(np.float64).eps * largest))
              & (largest >= np.finfo(np.float32).tiny))
    with np.errstate(divide="ignore", invalid="ignore"):
        lost = np.where(varies, np.sqrt(errors / count) / np.where(varies, spread, 1.0), 0.0)
    worst = int(np.argmax(lost))
    if not lost[worst] > 0:
        return None
    return worst, float(shift[worst] + mean[worst]), float(spread[worst]), float(lost[worst])


def check_float32_rounding(values, name: str, error: type[Exception] = None) -> None:
    """Refuse (``error``, default DataError) ``values`` whose variation rounding to float32
    would mostly destroy, and warn where it costs a visible share; see ``float32_rounding``."""
    found = float32_rounding(values)
    if found is None or found[3] <= FLOAT32_WARN_LOSS:
        return
    feature, mean, spread, lost = found
    text = (f"{name}: feature {feature} holds values around {mean:.7g} that vary by only "
            f"{spread:.3g} (standard deviation); rounded to float32, which the models compute "
            f"in (about 7 significant digits), {min(lost, 1.0):.0%} of that variation is "
            "rounding noise. Subtract an offset (e.g. each feature's mean) first")
    if lost > FLOAT32_REFUSE_LOSS:
        raise (error or DataError)(text)
    import warnings

    warnings.warn(text, RuntimeWarning, stacklevel=3)


def example_shape_problem(shape: tuple[int, ...], expected: tuple[int, ...], *,
                          expected_by: str = "the model expects") -> str | None:
    """Why examples shaped ``shape`` cannot be read as ``expected`` (a model's input shape), or
    None when they can: the same shape, either side flat (an image's values in order), or an
    image without its single channel axis. Another arrangement of the same values is refused:
    reshaping it would scramble them (channels last read as channels first). ``expected_by``
    words who expects ``expected``."""
    shape, expected = tuple(int(side) for side in shape), tuple(expected)
    if shape == expected:
        return None
    problem = f"examples are shaped {shape} but {expected_by} {expected}"
    if math.prod(shape) != math.prod(expected):
        return problem
    if len(shape) == 1 or len(expected) == 1:
        return None
    if (expected[0] == 1 and shape == expected[1:]) or (shape[0] == 1 and shape[1:] == expected):
        return None
    if len(shape) == len(expected) == 3 and shape == (*expected[1:], expected[0]):
        return problem + "; channels last? move them first (x.transpose(0, 3, 1, 2))"
    return problem + " (only the same shape, or its values flattened, is read)"


def to_example_layout(x: np.ndarray, *, name: str = "data") -> np.ndarray:
    """Arrange ``x`` as (N, D) tabular or (N, C, H, W) images.

    3-D (N, H, W) gains a channel axis; 4-D channel-last (N, H, W, C) with C in {1, 3}
    is transposed to channel-first unless axis 1 already looks like channels.
    """
    if x.ndim == 3:
        return x[:, None, :, :]
    if x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    if x.ndim not in (2, 4):
        raise DataError(
            f"{name} has {x.ndim} dimension(s) with shape {x.shape}; expected {LAYOUT_HINT}"
        )
    return x


def validate_labels(
    labels, count: int, *, name: str = "labels"
) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """Return labels as int64 (count,) plus class names when they were strings.

    Integer-valued numbers are kept as they are; strings become indices into their
    sorted unique values, which are returned as the class names.
    """
    array = _as_numpy(labels)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise DataError(f"{name} must be one value per example; got shape {array.shape}")
    if array.shape[0] != count:
        raise DataError(f"{name} has {array.shape[0]} entries but the data has {count} examples")
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise DataError(f"{name} contains NaN or infinite values")
        if not np.array_equal(array, np.round(array)):
            raise DataError(f"{name} must be integers or class names; got fractional values")
    if array.dtype.kind in "uf" and array.size:
        # Larger values would wrap around in int64 and silently become other classes.
        largest = float(np.abs(array).max())
        if largest >= 2.0**63:
            raise DataError(f"{name} holds values too large for class indices "
                            f"(up to {largest:g}); use class names or small integers")
    if array.dtype.kind in "biuf":
        return array.astype(np.int64), None
    if array.dtype.kind in "USO":
        text = np.array([v.decode(errors="replace") if isinstance(v, bytes) else str(v)
                         for v in array.tolist()])
        # A blank name would silently become a class of its own.
        blank = [index for index, value in enumerate(text.tolist()) if not value.strip()]
        if blank:
            raise DataError(f"{name} has an empty label at example {blank[0]} "
                            f"({len(blank)} empty in all)")
        class_names, indices = np.unique(text, return_inverse=True)
        return indices.astype(np.int64), tuple(str(value) for value in class_names)
    raise DataError(f"{name} has unsupported dtype {array.dtype}")


def rows_also_in(rows: np.ndarray, reference: np.ndarray) -> int:
    """How many of ``rows`` equal some row of ``reference`` exactly (a test example that is a
    copy of a training example measures memory, not generalisation). Rows are matched by a
    digest of their bytes, then compared in full."""
    if len(rows) == 0 or len(reference) == 0:
        return 0
    flat_reference = np.ascontiguousarray(reference.reshape(len(reference), -1))
    flat_rows = np.ascontiguousarray(rows.reshape(len(rows), -1), dtype=flat_reference.dtype)
    seen: dict[int, list[int]] = {}
    for index, row in enumerate(flat_reference):
        seen.setdefault(hash(row.tobytes()), []).append(index)
    return sum(any(np.array_equal(row, flat_reference[index])
                   for index in seen.get(hash(row.tobytes()), ()))
               for row in flat_rows)
