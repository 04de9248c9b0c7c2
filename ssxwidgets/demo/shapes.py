"""Generated images of shapes on clutter, with the ground truth of where they are.

Every image holds one object of a known class (circle, square, triangle, star,
cross or ring) drawn with a random colour, size, position and rotation on a
textured background of noise, lines and soft blobs. The object's pixels come
back as a mask, so an explanation can be scored against where the object
really is.

Usage::

    data = shapes(256, seed=1)                      # images, labels, masks
    data = shapes(256, seed=1, shortcut=True)       # a class-coloured corner patch
    data = shapes(256, seed=1, shortcut="shuffled") # the patch, colour at random
    first, second = shape_pairs(128, seed=2)        # two views per object

Rasterisation is vectorised over the whole batch: each shape is an inside test
on a coordinate grid (a signed-distance style inequality in the object's
rotated frame), so thousands of images are made per second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from threadpoolctl import threadpool_limits

__all__ = [
    "CLASS_NAMES",
    "IMAGE_SIZE",
    "PATCH_COLOURS",
    "PATCH_SIZE",
    "ShapesData",
    "shape_pairs",
    "shapes",
]

CLASS_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")
IMAGE_SIZE = 64
PATCH_SIZE = 6

# One colour per class for the shortcut patch, far apart in RGB.
PATCH_COLOURS = np.array(
    [
        [1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 1.0],
        [1.0, 1.0, 0.0],
        [1.0, 0.0, 1.0],
        [0.0, 1.0, 1.0],
    ],
    dtype=np.float32,
)

RADIUS_RANGE = (9.0, 17.0)
_CHUNK = 128
_N_BLOBS = 4
_N_LINES = 4
_PATCH_OFFSET = 1  # the patch sits one pixel in from the top-left corner

ShortcutMode = bool | Literal["shuffled"]

# Pixel centres, shared by every rasterisation.
_COORDS = np.arange(IMAGE_SIZE, dtype=np.float32) + 0.5
_YY, _XX = np.meshgrid(_COORDS, _COORDS, indexing="ij")


@dataclass(frozen=True)
class ShapesData:
    """A batch of generated shape images and their ground truth.

    Attributes
    ----------
    images
        ``(N, 64, 64, 3)`` float32 in ``[0, 1]``.
    labels
        ``(N,)`` int64 class indices into ``class_names``.
    masks
        ``(N, 64, 64)`` bool: the object's pixels (without the patch, if any).
    class_names
        The class names, ``CLASS_NAMES``.
    patch_masks
        ``(N, 64, 64)`` bool: the shortcut patch's pixels; ``None`` without one.
    patch_labels
        ``(N,)`` int64: the class whose colour the patch wears (equal to
        ``labels`` with ``shortcut=True``, random with ``"shuffled"``);
        ``None`` without a patch.
    seed
        The seed the batch was drawn with.
    shortcut
        The ``shortcut`` argument it was drawn with.
    """

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    class_names: tuple[str, ...] = CLASS_NAMES
    patch_masks: np.ndarray | None = None
    patch_labels: np.ndarray | None = None
    seed: int = 0
    shortcut: ShortcutMode = False

    def __len__(self) -> int:
        """The number of images."""
        return int(self.labels.shape[0])


def shapes(
    n: int, seed: int = 0, shortcut: ShortcutMode = False, *, clutter: float = 1.0
) -> ShapesData:
    """Draw ``n`` images of shapes on cluttered, textured backgrounds.

    Parameters
    ----------
    n
        How many images, at least 1.
    seed
        Seed of the random generator; the same seed gives the same batch.
    shortcut
        ``False``: no patch. ``True``: a ``PATCH_SIZE`` square patch in the
        top-left corner whose colour follows the class (a "Clever Hans" cue).
        ``"shuffled"``: the same patch wearing the colour of a class drawn at
        random, independent of the object. For one seed, the three settings
        give the same objects on the same backgrounds.
    clutter
        Strength of the background's blobs, lines and texture, from 0 (a plain
        gradient) to 1 (the default). Objects and colours do not depend on it.

    Returns
    -------
    ShapesData
        ``images`` ``(N, 64, 64, 3)``, ``labels`` ``(N,)``, ``masks``
        ``(N, 64, 64)`` and, with a patch, ``patch_masks`` ``(N, 64, 64)``.
    """
    n = _check_count(n)
    seed = _check_seed(seed)
    clutter = _check_clutter(clutter)
    if not (shortcut is False or shortcut is True or _is_shuffled(shortcut)):
        raise ValueError(
            f"shortcut must be False, True or 'shuffled'; got {shortcut!r}"
        )

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASS_NAMES), size=n)
    radii = rng.uniform(*RADIUS_RANGE, size=n).astype(np.float32)
    angles = rng.uniform(0.0, 2.0 * np.pi, size=n).astype(np.float32)
    patch_labels = None
    if shortcut is True:
        patch_labels = labels.copy()
    elif _is_shuffled(shortcut):
        # A stream of its own, so the objects and backgrounds are those of the
        # same seed with shortcut=True or False: only the patch colour changes.
        shuffle_rng = np.random.default_rng([seed, 1])
        patch_labels = shuffle_rng.integers(0, len(CLASS_NAMES), size=n)

    images, masks = _draw(rng, labels, radii, angles, clutter)
    patch_masks = None
    if patch_labels is not None:
        patch_masks = _add_patch(images, masks, patch_labels)
    return ShapesData(
        images=images,
        labels=labels.astype(np.int64),
        masks=masks,
        patch_masks=patch_masks,
        patch_labels=None if patch_labels is None else patch_labels.astype(np.int64),
        seed=seed,
        shortcut=shortcut,
    )


def shape_pairs(
    n: int,
    seed: int = 0,
    size_jitter: float = 0.1,
    angle_jitter: float = np.pi / 12,
    *,
    clutter: float = 1.0,
) -> tuple[ShapesData, ShapesData]:
    """Draw two views of each of ``n`` objects, for contrastive training.

    Both views show the same object (its class, with its size and rotation
    jittered slightly) drawn on different backgrounds, in different colours
    and at different positions.

    Parameters
    ----------
    n
        How many objects, at least 1.
    seed
        Seed of the random generator.
    size_jitter
        Largest relative change of the radius between the views.
    angle_jitter
        Largest change of the rotation between the views, in radians.
    clutter
        Strength of the backgrounds' clutter, as in `shapes`.

    Returns
    -------
    tuple of ShapesData
        The first and second views; ``labels`` are equal across them.
    """
    n = _check_count(n)
    seed = _check_seed(seed)
    clutter = _check_clutter(clutter)
    if not 0.0 <= size_jitter < 1.0:
        raise ValueError(f"size_jitter must lie in [0, 1); got {size_jitter!r}")

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASS_NAMES), size=n)
    radii = rng.uniform(*RADIUS_RANGE, size=n).astype(np.float32)
    angles = rng.uniform(0.0, 2.0 * np.pi, size=n).astype(np.float32)

    views = []
    for _ in range(2):
        scale = rng.uniform(1.0 - size_jitter, 1.0 + size_jitter, size=n)
        turn = rng.uniform(-angle_jitter, angle_jitter, size=n)
        view_radii = np.clip(radii * scale, *RADIUS_RANGE).astype(np.float32)
        images, masks = _draw(
            rng, labels, view_radii, (angles + turn).astype("f4"), clutter
        )
        views.append(
            ShapesData(
                images=images, labels=labels.astype(np.int64), masks=masks, seed=seed
            )
        )
    return views[0], views[1]


def _is_shuffled(shortcut: object) -> bool:
    return isinstance(shortcut, str) and shortcut == "shuffled"


def _check_count(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}")
    return int(n)


def _check_clutter(clutter: float) -> float:
    if isinstance(clutter, bool) or not isinstance(clutter, int | float | np.number):
        raise ValueError(f"clutter must be a number in [0, 1]; got {clutter!r}")
    if not 0.0 <= clutter <= 1.0:
        raise ValueError(f"clutter must be a number in [0, 1]; got {clutter!r}")
    return float(clutter)


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    return int(seed)


def _draw(
    rng: np.random.Generator,
    labels: np.ndarray,
    radii: np.ndarray,
    angles: np.ndarray,
    clutter: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Render objects of the given classes, sizes and rotations on clutter.

    Positions, colours and backgrounds are drawn from ``rng``. Returns images
    ``(N, 64, 64, 3)`` float32 and masks ``(N, 64, 64)`` bool.
    """
    n = labels.shape[0]
    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.float32)
    masks = np.empty((n, IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    # The matrix products here are small: BLAS threads only contend, and on a
    # busy machine they make generation several times slower.
    with threadpool_limits(limits=1, user_api="blas"):
        for start in range(0, n, _CHUNK):
            part = slice(start, min(start + _CHUNK, n))
            images[part], masks[part] = _draw_chunk(
                rng, labels[part], radii[part], angles[part], clutter
            )
    return images, masks


def _draw_chunk(
    rng: np.random.Generator,
    labels: np.ndarray,
    radii: np.ndarray,
    angles: np.ndarray,
    clutter: float,
) -> tuple[np.ndarray, np.ndarray]:
    n = labels.shape[0]
    margin = radii * 1.15 + 1.0  # the star's tips reach 1.15 radii
    centres = rng.uniform(margin[:, None], IMAGE_SIZE - margin[:, None], size=(n, 2))
    images = _background(rng, n, clutter)
    masks = _rasterise(labels, radii, angles, centres.astype(np.float32))

    # Object colour: the first of a few candidates that stands out from the
    # background under the object, else the one that stands out most.
    candidates = rng.uniform(0.0, 1.0, size=(n, 6, 3)).astype(np.float32)
    area = np.maximum(masks.sum(axis=(1, 2)), 1)[:, None]
    under = np.einsum("nhw,nhwc->nc", masks, images) / area
    distance = np.linalg.norm(candidates - under[:, None, :], axis=-1)
    good = distance > 0.45
    pick = np.where(good.any(axis=1), good.argmax(axis=1), distance.argmax(axis=1))
    colours = candidates[np.arange(n), pick]

    # A gentle shading across the object, so it is not a flat fill; only the
    # object's pixels are computed.
    direction = rng.uniform(0.0, 2.0 * np.pi, size=(n,)).astype(np.float32)
    which, row, col = np.nonzero(masks)
    ramp = (
        (_COORDS[col] - centres[which, 0]) * np.cos(direction[which])
        + (_COORDS[row] - centres[which, 1]) * np.sin(direction[which])
    ) / radii[which]
    shade = 1.0 + 0.12 * np.clip(ramp, -1.0, 1.0)
    images[which, row, col] = colours[which] * shade[:, None]

    # Sensor noise over everything (uniform, of standard deviation sigma).
    sigma = rng.uniform(0.02, 0.07, size=(n, 1, 1, 1)).astype(np.float32)
    noise = rng.random(images.shape, dtype=np.float32)
    noise -= 0.5
    noise *= sigma * np.float32(np.sqrt(12.0))
    images += noise
    np.clip(images, 0.0, 1.0, out=images)
    return images, masks


def _rasterise(
    labels: np.ndarray, radii: np.ndarray, angles: np.ndarray, centres: np.ndarray
) -> np.ndarray:
    """Inside tests of every shape on the pixel grid: ``(N, 64, 64)`` bool."""
    dx = _XX[None] - centres[:, 0, None, None]
    dy = _YY[None] - centres[:, 1, None, None]
    cos = np.cos(angles)[:, None, None]
    sin = np.sin(angles)[:, None, None]
    u = dx * cos + dy * sin
    v = dy * cos - dx * sin
    r = radii[:, None, None]
    masks = np.zeros(u.shape, dtype=bool)

    for index, name in enumerate(CLASS_NAMES):
        rows = labels == index
        if rows.any():
            masks[rows] = _INSIDE[name](u[rows], v[rows], r[rows])
    return masks


def _circle(u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    return u * u + v * v <= r * r


def _square(u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(u), np.abs(v)) <= 0.82 * r


def _triangle(u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    # Equilateral, circumradius 1.1 r: three half-planes at the inradius.
    inside = np.ones(u.shape, dtype=bool)
    for k in range(3):
        theta = np.pi / 2 + 2 * np.pi * k / 3
        inside &= u * np.cos(theta) + v * np.sin(theta) <= 0.55 * r
    return inside


def _star(u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    # Five points: fold the angle into one half-sector, then test the side of
    # the edge from the tip (1.15 r) to the inner corner (0.5 r).
    sector = 2 * np.pi / 5
    rho = np.hypot(u, v)
    phi = np.abs(np.mod(np.arctan2(v, u), sector) - sector / 2)
    phi = sector / 2 - phi  # 0 at a tip, sector / 2 at an inner corner
    x, y = rho * np.cos(phi), rho * np.sin(phi)
    tip_x = 1.15 * r
    corner_x, corner_y = 0.5 * r * np.cos(sector / 2), 0.5 * r * np.sin(sector / 2)
    # Cross product sign: the origin side of the line tip -> corner.
    side = (corner_x - tip_x) * y - corner_y * (x - tip_x)
    return side >= 0


def _cross(u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    au, av = np.abs(u), np.abs(v)
    arm = 0.3 * r
    return ((au <= arm) & (av <= r)) | ((av <= arm) & (au <= r))


def _ring(u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    d2 = u * u + v * v
    return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)


_INSIDE = {
    "circle": _circle,
    "square": _square,
    "triangle": _triangle,
    "star": _star,
    "cross": _cross,
    "ring": _ring,
}


def _background(rng: np.random.Generator, n: int, clutter: float) -> np.ndarray:
    """Clutter: a colour gradient, soft blobs, lines and a smooth texture.

    The layers are composited in one go: each layer's coverage is a scalar map
    (built from separable x and y terms where it can be), the "over" operator
    turns coverages into per-layer weights, and one batched matrix product
    mixes the layer colours.
    """
    size = IMAGE_SIZE
    along = (_COORDS / size)[None]  # (1, W) in [0, 1]
    coverage: list[np.ndarray] = []

    # A gradient between two colours along a random direction: the first two
    # layers, the second covering the first by the ramp.
    theta = rng.uniform(0.0, 2.0 * np.pi, size=(n, 1)).astype(np.float32)
    ramp_x = (along - 0.5) * np.cos(theta) + 0.5
    ramp_y = (along - 0.5) * np.sin(theta)
    coverage.append(np.clip(ramp_y[:, :, None] + ramp_x[:, None, :], 0.0, 1.0))

    # Soft blobs: Gaussian bumps of colour, faded in.
    for _ in range(_N_BLOBS):
        centre = rng.uniform(0.0, 1.0, size=(n, 2, 1)).astype(np.float32)
        width = rng.uniform(0.04, 0.18, size=(n, 1)).astype(np.float32)
        alpha = rng.uniform(0.0, 0.7 * clutter, size=(n, 1, 1)).astype(np.float32)
        spread = -2.0 * width * width
        # Exponents floored at -30 keep products clear of slow subnormals.
        bump_x = np.exp(np.maximum((along - centre[:, 0]) ** 2 / spread, -30.0))
        bump_y = np.exp(np.maximum((along - centre[:, 1]) ** 2 / spread, -30.0))
        coverage.append(alpha * bump_y[:, :, None] * bump_x[:, None, :])

    # Lines: anti-aliased strokes of random width, direction and opacity.
    centred = (_COORDS - size / 2)[None]
    for _ in range(_N_LINES):
        normal = rng.uniform(0.0, np.pi, size=(n, 1)).astype(np.float32)
        offset = rng.uniform(-size / 2, size / 2, size=(n, 1, 1)).astype(np.float32)
        reach = rng.uniform(0.9, 1.9, size=(n, 1, 1)).astype(np.float32)
        alpha = rng.uniform(0.0, 0.8 * clutter, size=(n, 1, 1)).astype(np.float32)
        across = (centred * np.sin(normal))[:, :, None] + (centred * np.cos(normal))[
            :, None, :
        ]
        across -= offset
        np.abs(across, out=across)
        np.subtract(reach, across, out=across)  # reach: half width + 1/2 pixel
        np.clip(across, 0.0, 1.0, out=across)
        across *= alpha
        coverage.append(across)

    # "Over" compositing, top layer last: layer k shows by its coverage times
    # what every layer above lets through; the bottom layer takes the rest.
    layers = len(coverage) + 1
    weights = np.empty((n, layers, size, size), dtype=np.float32)
    through = np.ones((n, size, size), dtype=np.float32)
    for k in range(layers - 2, -1, -1):
        np.multiply(coverage[k], through, out=weights[:, k + 1])
        through -= weights[:, k + 1]
    weights[:, 0] = through
    colours = rng.uniform(0.0, 1.0, size=(n, layers, 3)).astype(np.float32)
    flat = weights.reshape(n, layers, size * size)
    images = np.einsum("nkp,nkc->npc", flat, colours, optimize=True)
    images = images.reshape(n, size, size, 3)

    # Smooth texture: a coarse random field, upsampled bilinearly.
    coarse = rng.standard_normal((n, _TEXTURE_GRID, _TEXTURE_GRID, 3), "f4")
    amplitude = rng.uniform(0.03, 0.12, size=(n, 1, 1, 1)) * clutter
    coarse *= amplitude.astype(np.float32)
    images += np.einsum("hi,nijc,wj->nhwc", _UPSAMPLE, coarse, _UPSAMPLE, optimize=True)
    return images


def _upsampler(coarse: int) -> np.ndarray:
    """``(64, coarse)`` weights of bilinear interpolation to the image size."""
    position = (_COORDS / IMAGE_SIZE) * (coarse - 1)
    low = np.floor(position).astype(np.intp)
    high = np.minimum(low + 1, coarse - 1)
    frac = (position - low).astype(np.float32)
    weights = np.zeros((IMAGE_SIZE, coarse), dtype=np.float32)
    weights[np.arange(IMAGE_SIZE), low] += 1.0 - frac
    weights[np.arange(IMAGE_SIZE), high] += frac
    return weights


_TEXTURE_GRID = 9
_UPSAMPLE = _upsampler(_TEXTURE_GRID)


def _add_patch(
    images: np.ndarray, masks: np.ndarray, patch_labels: np.ndarray
) -> np.ndarray:
    """Paint the corner patch in place; returns ``(N, 64, 64)`` patch masks."""
    low, high = _PATCH_OFFSET, _PATCH_OFFSET + PATCH_SIZE
    patch = np.zeros(masks.shape[1:], dtype=bool)
    patch[low:high, low:high] = True
    images[:, low:high, low:high, :] = PATCH_COLOURS[patch_labels][:, None, None, :]
    masks &= ~patch
    return np.broadcast_to(patch, masks.shape).copy()
