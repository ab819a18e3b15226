"""dSprites, rendered on the fly: no download, any grid point addressed by its index.

The factor grid of Matthey et al. (2017): shape (square, ellipse, heart), scale (6 values
linearly spaced in [0.5, 1]), orientation (40 values), x position and y position (32 values
each in [0, 1]): 737,280 combinations of 64x64 binary images. Orientations are 40 equal steps
over [0, 2 pi) with 2 pi excluded. The original file appears to use 40 values from 0 to 2 pi
inclusive, so its first and last orientations draw the same image (reported in
google-deepmind/dsprites-dataset issue 7); here every orientation is a distinct angle.

The constant "color" factor of the original file is dropped: its size is 1, so the grid
indices are those of the original file (shape slowest, y position fastest) and the five
factors are the ones disentanglement_lib scores.

Each image is drawn by evaluating the shape's implicit function at the pixel centres after
moving them into the shape's own frame (translate, rotate back, divide by the scale), for a
whole batch at once in numpy. Rotation acts on the shape itself, so a square repeats every
quarter turn and an ellipse every half turn, as in the original. Only a window around each
sprite is evaluated, which makes rendering fast (see benchmarks/dsprites_render.py).

Variants as in Locatello et al. (2019): ``color`` multiplies the sprite by a random colour per
image (each channel uniform in [0.5, 1]; not a factor), ``noisy`` puts the white sprite on
uniform [0, 1] noise per pixel and channel. Both have 3 channels and draw their randomness
from the ``random_state`` passed in.
"""

from __future__ import annotations

import math

import numpy as np

from .containers import Dataset, Split, assemble_dataset
from .download import DataSource
from .ground_truth import GroundTruthData
from .registry import DATASETS, register_dataset

FACTOR_NAMES = ("shape", "scale", "orientation", "x_position", "y_position")
SHAPE_NAMES = ("square", "ellipse", "heart")
VARIANTS = ("binary", "color", "noisy")

# Geometry, as fractions of the image side. A position of 0 puts the sprite's centre at
# POSITION_MARGIN, 1 at 1 - POSITION_MARGIN; one unit of the shapes' own frame is
# UNIT * scale. At scale 1 the square's side is 0.32 of the image (20 of 64 pixels).
POSITION_MARGIN = 0.2
UNIT = 0.16
ELLIPSE_AXES = (1.3, 0.65)  # semi-axes along the shape's x and y, in units
# The heart (x^2 + y^2 - 1)^3 <= x^2 y^3 spans y in [-1, 1.236]; shifting it by the middle of
# that range centres it on the position.
HEART_SHIFT = 0.118
# Largest distance from a shape's centre to its outline, in units (the square's corner).
MAX_RADIUS = math.sqrt(2.0)
COLOR_RANGE = (0.5, 1.0)
CHUNK = 256  # images evaluated together: keeps the temporaries in cache

# Fixed seeds and sizes of the named datasets: changing them changes published splits.
SPLIT_SEED = 0
COLOR_TRAIN_SEED = 1
COLOR_TEST_SEED = 2


def window_size(image_size: int, max_scale: float) -> int:
    """Side of the square window that holds a sprite of scale up to ``max_scale``."""
    radius = MAX_RADIUS * UNIT * max_scale * image_size
    return int(min(image_size, 2 * math.ceil(radius) + 2))


def render_sprites(
    shape: np.ndarray,
    scale: np.ndarray,
    orientation: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    image_size: int = 64,
) -> np.ndarray:
    """(N, S, S) uint8 images in {0, 1} of sprites with the given factor values.

    Args:
        shape: (N,) ints, 0 square, 1 ellipse, 2 heart.
        scale: (N,) sizes (1 is the largest dSprites scale).
        orientation: (N,) angles in radians, counter-clockwise.
        x, y: (N,) positions in [0, 1]; x grows to the right, y downwards (image rows).
        image_size: S, the side of the square images.

    A pixel is 1 when its centre lies inside the shape.
    """
    shape = np.asarray(shape, dtype=np.int64).reshape(-1)
    values = [np.asarray(v, dtype=np.float64).reshape(-1) for v in (scale, orientation, x, y)]
    n = shape.size
    if any(v.size != n for v in values):
        raise ValueError("shape, scale, orientation, x and y must have the same length")
    if n and (shape.min() < 0 or shape.max() >= len(SHAPE_NAMES)):
        raise ValueError(f"shape must be 0 (square), 1 (ellipse) or 2 (heart), got {shape}")
    if n and not np.all(values[0] > 0):
        raise ValueError("scale must be positive")
    images = np.zeros((n, image_size, image_size), dtype=np.uint8)
    if n == 0:
        return images
    scale = values[0]
    for kind, inside in enumerate(_INSIDE):
        members = np.flatnonzero(shape == kind)
        # Sorted by scale, so each chunk's window fits its own largest sprite.
        members = members[np.argsort(scale[members], kind="stable")]
        for start in range(0, members.size, CHUNK):
            part = members[start : start + CHUNK]
            width = window_size(image_size, float(scale[part[-1]]))
            top, left, window = _render_window(inside, *(v[part] for v in values),
                                               image_size, width)
            # A plain loop of slice copies beats fancy-index scatters here (~2 us an image).
            for index, row, column, pixels in zip(part.tolist(), top.tolist(), left.tolist(),
                                                  window.view(np.uint8)):
                images[index, row : row + width, column : column + width] = pixels
    return images


def _render_window(inside, scale, orientation, x, y, size: int, width: int):
    """(top, left, window): each sprite evaluated on a width x width window of the image."""
    pixels = size * UNIT * scale  # pixels per unit of the shape's frame
    span = 1.0 - 2.0 * POSITION_MARGIN
    centre_column = (POSITION_MARGIN + span * x) * size
    centre_row = (POSITION_MARGIN + span * y) * size
    half = width // 2
    top = np.clip(np.rint(centre_row).astype(np.int64) - half, 0, size - width)
    left = np.clip(np.rint(centre_column).astype(np.int64) - half, 0, size - width)
    offsets = np.arange(width) + 0.5
    # Offsets of the window's pixel centres from the sprite's centre, in units; y points up.
    dx = ((left[:, None] + offsets) - centre_column[:, None]) / pixels[:, None]
    dy = (centre_row[:, None] - (top[:, None] + offsets)) / pixels[:, None]
    cos, sin = np.cos(orientation)[:, None], np.sin(orientation)[:, None]
    # Rotate back by the orientation: (u, v) = R(-theta) (dx, dy), separable in row and column.
    window = inside(
        (cos * dx).astype(np.float32),
        (sin * dy).astype(np.float32),
        (-sin * dx).astype(np.float32),
        (cos * dy).astype(np.float32),
    )
    return top, left, window


def _frame(u_column, u_row, v_column, v_row, u_factor=1.0, v_factor=1.0, v_shift=0.0):
    """(u, v) coordinates of every window pixel in the shape's frame, (n, width, width)."""
    u = (u_column * u_factor)[:, None, :] + (u_row * u_factor)[:, :, None]
    v = (v_column * v_factor)[:, None, :] + (v_row * v_factor + v_shift)[:, :, None]
    return u, v


def _inside_square(*rows) -> np.ndarray:
    u, v = _frame(*rows)
    np.abs(u, out=u)
    np.abs(v, out=v)
    np.maximum(u, v, out=u)
    return u <= 1.0


def _inside_ellipse(*rows) -> np.ndarray:
    u, v = _frame(*rows, u_factor=1.0 / ELLIPSE_AXES[0], v_factor=1.0 / ELLIPSE_AXES[1])
    np.multiply(u, u, out=u)
    np.multiply(v, v, out=v)
    u += v
    return u <= 1.0


def _inside_heart(*rows) -> np.ndarray:
    u, v = _frame(*rows, v_shift=HEART_SHIFT)
    u2 = u * u
    v2 = v * v
    radial = u2 + v2
    radial -= 1.0
    cube = radial * radial
    cube *= radial
    v2 *= v
    v2 *= u2
    return cube <= v2


_INSIDE = (_inside_square, _inside_ellipse, _inside_heart)


class DSprites(GroundTruthData):
    """The dSprites grid as ground-truth data (see the module docstring).

    Args:
        variant: "binary" (1 channel, the original), "color" or "noisy" (3 channels).
        scales, orientations, positions: number of values of each factor (the original:
            6, 40, 32; the same number for x and y positions).
        image_size: side of the square images (64 in the original).

    Factors are (N, 5) int indices in the order of ``factor_names``; ``factor_values`` turns
    them into the values drawn (shape id, scale, radians, x, y).
    """

    def __init__(
        self,
        variant: str = "binary",
        *,
        scales: int = 6,
        orientations: int = 40,
        positions: int = 32,
        image_size: int = 64,
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        for name, count in (("scales", scales), ("orientations", orientations),
                            ("positions", positions), ("image_size", image_size)):
            if int(count) < 1:
                raise ValueError(f"{name} must be a positive integer, got {count}")
        self.variant = variant
        self.image_size = int(image_size)
        self.factor_names = FACTOR_NAMES
        self.factor_sizes = (len(SHAPE_NAMES), int(scales), int(orientations),
                             int(positions), int(positions))
        channels = 1 if variant == "binary" else 3
        self.observation_shape = (channels, self.image_size, self.image_size)
        self.deterministic = variant == "binary"
        self.scale_values = np.linspace(0.5, 1.0, int(scales)) if scales > 1 else np.ones(1)
        self.orientation_values = np.linspace(0.0, 2.0 * math.pi, int(orientations),
                                              endpoint=False)
        self.position_values = np.linspace(0.0, 1.0, int(positions))

    def factor_values(self, factors) -> np.ndarray:
        """(N, 5) float64 values of the factors: shape id, scale, orientation (radians), x, y."""
        index = self.check_factors(factors)
        return np.stack(
            [
                index[:, 0].astype(np.float64),
                self.scale_values[index[:, 1]],
                self.orientation_values[index[:, 2]],
                self.position_values[index[:, 3]],
                self.position_values[index[:, 4]],
            ],
            axis=1,
        )

    def render(self, factors) -> np.ndarray:
        """(N, S, S) uint8 binary sprites (no colour, no noise) for factor indices."""
        values = self.factor_values(factors)
        return render_sprites(values[:, 0].astype(np.int64), values[:, 1], values[:, 2],
                              values[:, 3], values[:, 4], self.image_size)

    def sample_observations_from_factors(
        self, factors, random_state: np.random.Generator | None = None
    ) -> np.ndarray:
        """(N, C, S, S) float32 images in [0, 1]; the variants draw from ``random_state``."""
        masks = self.render(factors)[:, None, :, :]
        if self.variant == "binary":
            return masks.astype(np.float32)
        if random_state is None:
            raise ValueError(f"the {self.variant} variant needs a random_state (a Generator)")
        n = masks.shape[0]
        if self.variant == "color":
            low, high = COLOR_RANGE
            color = random_state.uniform(low, high, size=(n, 3)).astype(np.float32)
            return masks * color[:, :, None, None]
        noise = random_state.random(size=(n, 3, self.image_size, self.image_size),
                                    dtype=np.float32)
        return np.maximum(noise, masks.astype(np.float32))

    def describe(self) -> dict:
        record = super().describe()
        record.update(
            variant=self.variant,
            factor_values={
                "shape": list(SHAPE_NAMES),
                "scale": self.scale_values.tolist(),
                "orientation": f"linspace(0, 2 pi, {self.factor_sizes[2]}, endpoint=False)",
                "x_position": f"linspace(0, 1, {self.factor_sizes[3]})",
                "y_position": f"linspace(0, 1, {self.factor_sizes[4]})",
            },
        )
        return record


def sprites_dataset(
    name: str,
    ground_truth: DSprites,
    train_count: int,
    test_count: int,
    *,
    seed: int = SPLIT_SEED,
    description: str = "",
) -> Dataset:
    """A Dataset of rendered sprites: train and test are disjoint seeded random subsets of the
    grid (both sorted by grid index), x float32 (N, C, S, S), labels = the shape factor,
    factors = all five factor indices. The whole grid is used when the counts cover it."""
    total = ground_truth.num_combinations
    if train_count < 1 or test_count < 1 or train_count + test_count > total:
        raise ValueError(
            f"need 1 <= train, test and train + test <= {total}; got {train_count}, {test_count}"
        )
    generator = np.random.default_rng(seed)
    chosen = generator.choice(total, size=train_count + test_count, replace=False)
    splits = []
    for indices, observation_seed in ((chosen[:train_count], COLOR_TRAIN_SEED),
                                      (chosen[train_count:], COLOR_TEST_SEED)):
        factors = ground_truth.index_to_factors(np.sort(indices))
        x = _observations(ground_truth, factors, np.random.default_rng(observation_seed))
        splits.append(Split(x, factors[:, 0].copy(), factors=factors))
    return assemble_dataset(
        name,
        splits[0],
        None,
        splits[1],
        description=description,
        class_names=SHAPE_NAMES,
        factor_names=ground_truth.factor_names,
        factor_sizes=ground_truth.factor_sizes,
        ground_truth=ground_truth,
    )


def _observations(ground_truth: DSprites, factors: np.ndarray, generator) -> np.ndarray:
    """All observations, rendered in blocks into one preallocated float32 array."""
    x = np.empty((factors.shape[0], *ground_truth.observation_shape), dtype=np.float32)
    block = 8192
    for start in range(0, factors.shape[0], block):
        part = factors[start : start + block]
        if ground_truth.deterministic:  # binary: cast the masks in place, no float copy
            x[start : start + block, 0] = ground_truth.render(part)
        else:
            x[start : start + block] = ground_truth.sample_observations_from_factors(
                part, generator
            )
    return x


@register_dataset(
    "dsprites",
    "dSprites rendered on the fly (no download): 64x64 binary sprites, 5 factors (shape, "
    "scale, orientation, x, y; 737,280 grid points), 100k train / 10k test drawn from the "
    "grid; labels = shape",
)
def build_dsprites(source: DataSource) -> Dataset:
    return sprites_dataset("dsprites", DSprites(), 100_000, 10_000,
                           description=DATASETS["dsprites"].description)


@register_dataset(
    "color-dsprites",
    "dSprites with a random colour per image (each RGB channel uniform in [0.5, 1]; not a "
    "factor): 3x64x64, 30k train / 10k test from the grid (memory); labels = shape",
)
def build_color_dsprites(source: DataSource) -> Dataset:
    return sprites_dataset("color-dsprites", DSprites("color"), 30_000, 10_000,
                           description=DATASETS["color-dsprites"].description)


@register_dataset(
    "noisy-dsprites",
    "dSprites with white sprites on uniform [0, 1] noise per pixel and channel: 3x64x64, "
    "30k train / 10k test from the grid (memory); labels = shape",
)
def build_noisy_dsprites(source: DataSource) -> Dataset:
    return sprites_dataset("noisy-dsprites", DSprites("noisy"), 30_000, 10_000,
                           description=DATASETS["noisy-dsprites"].description)


SMALL_GRID = {"scales": 2, "orientations": 5, "positions": 8, "image_size": 32}


def small_dsprites(variant: str = "binary") -> DSprites:
    """The small grid of ``dsprites-small``: 3 shapes x 2 scales x 5 orientations x 8 x 8
    positions (1,920 points), 32x32 images. Five orientations over [0, 2 pi) keep every
    orientation of the square and the ellipse distinct."""
    return DSprites(variant, **SMALL_GRID)


@register_dataset(
    "dsprites-small",
    "a small dSprites grid for fast tests: 3 shapes x 2 scales x 5 orientations x 8 x 8 "
    "positions, 32x32 binary images, the whole grid split 90/10 train/test; labels = shape",
)
def build_dsprites_small(source: DataSource) -> Dataset:
    ground_truth = small_dsprites()
    total = ground_truth.num_combinations
    test_count = round(0.1 * total)
    return sprites_dataset("dsprites-small", ground_truth, total - test_count, test_count,
                           description=DATASETS["dsprites-small"].description)
