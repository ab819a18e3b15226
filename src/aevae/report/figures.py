"""Image grids written with matplotlib (Agg backend, no display needed), atomically."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np

from ..io import atomic_write_bytes


def image_grid(images: np.ndarray, columns: int | None = None, padding: int = 1,
               value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """Tile images shaped (N, C, H, W) or (N, H, W) into one (rows*H, columns*W[, 3]) array
    of grey levels in [0, 1]: ``value_range`` (low, high) maps to black and white."""
    images = np.asarray(images, dtype=np.float32)
    low, high = value_range
    if (low, high) != (0.0, 1.0):
        images = (images - low) / (high - low if high > low else 1.0)
    if images.ndim == 2:  # tabular rows: show each as a one-pixel-high strip
        images = images[:, None, None, :]
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise ValueError(f"expected images shaped (N, C, H, W), got {images.shape}")
    count, channels, height, width = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    canvas = np.ones(
        (channels, rows * (height + padding) + padding, columns * (width + padding) + padding),
        dtype=np.float32,
    )
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        top, left = padding + row * (height + padding), padding + column * (width + padding)
        canvas[:, top:top + height, left:left + width] = image
    canvas = np.clip(canvas, 0.0, 1.0)
    return canvas[0] if channels == 1 else np.transpose(canvas[:3], (1, 2, 0))


# File extension -> matplotlib format (matplotlib requires Pillow, which writes the JPEGs).
IMAGE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".pdf": "pdf", ".svg": "svg"}


def image_format(path: str | os.PathLike) -> str:
    """The format ``path``'s extension asks for; ValueError listing the supported ones.
    Cheap, so commands call it before any work."""
    suffix = Path(path).suffix.lower()
    if suffix not in IMAGE_FORMATS:
        problem = f"unsupported extension {suffix!r}" if suffix else "no file extension"
        raise ValueError(f"cannot write the image {path}: {problem}; "
                         f"use {', '.join(sorted(IMAGE_FORMATS))}")
    return IMAGE_FORMATS[suffix]


def display_range(images) -> tuple[float, float]:
    """Grey levels for images: [0, 1] for values within it (pixels as aevae reads them), else
    the images' own range (8-bit or standardised values would show as black and white)."""
    values = np.asarray(images, dtype=np.float32)
    finite = values[np.isfinite(values)]
    if finite.size == 0 or (finite.min() >= 0.0 and finite.max() <= 1.0):
        return 0.0, 1.0
    return float(finite.min()), float(finite.max())


def save_image_grid(images: np.ndarray, path, *, columns: int | None = None,
                    title: str | None = None, scale: float = 1.0) -> None:
    """Save a grid of images (atomically) in the format the extension names (see
    ``IMAGE_FORMATS``: PNG, JPEG, PDF or SVG)."""
    file_format = image_format(path)
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    grid = image_grid(images, columns, value_range=display_range(images))
    height, width = grid.shape[:2]
    # About four screen pixels per image pixel, within sensible figure sizes.
    inches = min(12.0, max(3.0, scale * 4.0 * max(height, width) / 100.0))
    figure = Figure(figsize=(inches * width / max(height, width) + 0.2,
                             inches * height / max(height, width) + (0.5 if title else 0.2)))
    axis = figure.add_subplot()
    axis.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    axis.set_axis_off()
    if title:
        axis.set_title(title, fontsize=9)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=file_format, dpi=100, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
