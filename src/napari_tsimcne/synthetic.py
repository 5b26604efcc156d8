"""Sample image collections made on the fly, for napari's sample menu, tests and the guide.

* :func:`make_cell_crops`: generated two-channel crops of single cells
  (nucleus, cell body) in four morphologies, with a few near-duplicates and
  outliers planted on purpose so that the explore tools have something to find;
* :func:`make_cell_field`: generated cells scattered over one large field,
  with their Labels, for cutting one crop per object;
* :func:`make_shapes`: labelled shapes whose class is carried by form alone
  while position, size, rotation, brightness and background vary at random:
  a collection where pixel neighbours mislead, for the demo and benchmarks.

Everything is deterministic for a given ``seed`` and cheap enough to generate on demand.
What is known about the images comes as a dict of columns (name: array with
one value per image or object), a table that ``pandas.DataFrame`` takes.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = [
    "MORPHOLOGIES",
    "OUTLIER_KINDS",
    "SHAPES",
    "make_cell_crops",
    "make_cell_field",
    "make_shapes",
]

MORPHOLOGIES = ("round", "elongated", "dividing", "blebbing")
OUTLIER_KINDS = ("empty", "debris", "giant", "out of focus", "two cells", "saturated")
SHAPES = ("disc", "ring", "square", "triangle", "cross")

#: Camera offset and read noise of the generated images, in counts.
_BACKGROUND, _READ_NOISE = 100.0, 15.0
_SATURATION = np.iinfo(np.uint16).max


def make_cell_crops(
    n_images: int = 500,
    size: int = 64,
    *,
    n_duplicates: int = 8,
    n_outliers: int = 6,
    seed: int = 0,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Generated crops of single cells, channel 0 the nucleus and channel 1 the cell body.

    Cells are round, elongated, dividing (two lobes, two nuclei) or blebbing
    (bumps on the outline, lobed nucleus), with random orientation, size,
    position, brightness, texture and camera noise.  ``n_duplicates`` images
    are copies of other images with fresh noise, and ``n_outliers`` show no
    ordinary cell (see :data:`OUTLIER_KINDS`); both are shuffled in.

    Returns
    -------
    images : uint16 array (n_images, size, size, 2)
    truth : columns ``morphology`` (str array (n_images,), one of
        :data:`MORPHOLOGIES` or ``"outlier: <kind>"``) and ``duplicate_of``
        (int array (n_images,), the index of the image it copies, or -1).
    """
    if n_duplicates + n_outliers >= n_images:
        raise ValueError(
            f"n_images={n_images} leaves no ordinary cells next to {n_duplicates} "
            f"near-duplicates and {n_outliers} outliers."
        )
    rng = np.random.default_rng(seed)
    n_cells = n_images - n_duplicates - n_outliers
    morphology = [MORPHOLOGIES[i % len(MORPHOLOGIES)] for i in range(n_cells)]
    kinds = [OUTLIER_KINDS[i % len(OUTLIER_KINDS)] for i in range(n_outliers)]
    signal = np.stack(
        [_draw_cell(m, size, rng) for m in morphology] + [_draw_outlier(k, size, rng) for k in kinds]
    )
    images = _camera(signal, rng)
    originals = rng.choice(n_cells, n_duplicates, replace=False)
    copies = np.clip(images[originals] + rng.normal(0, _READ_NOISE, images[originals].shape), 0, None)
    images = np.concatenate([images, copies])

    labels = morphology + [f"outlier: {k}" for k in kinds] + [morphology[i] for i in originals]
    duplicate_of = np.concatenate([np.full(n_cells + n_outliers, -1), originals])
    order = rng.permutation(n_images)
    new_position = np.argsort(order)
    duplicate_of = duplicate_of[order]
    duplicate_of[duplicate_of >= 0] = new_position[duplicate_of[duplicate_of >= 0]]
    truth = {"morphology": np.asarray(labels)[order], "duplicate_of": duplicate_of}
    return _to_uint16(images[order]), truth


def make_cell_field(
    n_cells: int = 60, shape: tuple[int, int] = (512, 512), *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Generated cells placed on a jittered grid over one field of view.

    Returns
    -------
    image : uint16 array (H, W, 2), channel 0 the nucleus, channel 1 the cell body
    labels : int32 array (H, W), one label per cell (1, 2, ...), 0 for background
    truth : columns ``label`` (int array (n_cells,)) and ``morphology`` (str array)
        of every cell
    """
    rng = np.random.default_rng(seed)
    tile = 64
    rows, cols = shape[0] // tile, shape[1] // tile
    if n_cells > rows * cols:
        raise ValueError(f"A {shape} field holds at most {rows * cols} cells of {tile} px.")
    signal = np.zeros((*shape, 2))
    labels = np.zeros(shape, dtype=np.int32)
    cells = rng.choice(rows * cols, n_cells, replace=False)
    morphology = [MORPHOLOGIES[i % len(MORPHOLOGIES)] for i in range(n_cells)]
    for label, (cell, kind) in enumerate(zip(cells, morphology), start=1):
        row, col = divmod(cell, cols)
        top, left = row * tile, col * tile
        cell_signal = _draw_cell(kind, tile, rng, max_radius=0.36)
        window = (slice(top, top + tile), slice(left, left + tile))
        signal[window] = cell_signal
        bright = cell_signal > 0.3 * cell_signal.max(axis=(0, 1))
        inside = ndimage.binary_fill_holes(bright[..., 0] | bright[..., 1])
        labels[window][inside] = label
    image = _camera(signal[None], rng)[0]
    truth = {"label": np.arange(1, n_cells + 1), "morphology": np.asarray(morphology)}
    return _to_uint16(image), labels, truth


def make_shapes(n_images: int = 2000, size: int = 32, *, seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray]:
    """Grey images of one shape each, whose pixels say little about which shape.

    Every image shows one of :data:`SHAPES` at a random position, size
    (radius 18-32% of the side), rotation and brightness, on a background of
    random level with smooth shading and pixel noise.  Two images of the same
    shape rarely share bright pixels, so neighbours in pixel space are mostly
    of other shapes (kNN on pixels is near chance), while the augmentations
    (crops, flips, rotations, intensity jitter) vary exactly what does not
    matter.  Classes are balanced and shuffled.

    Returns
    -------
    images : uint8 array (n_images, size, size)
    labels : int array (n_images,), indices into :data:`SHAPES`
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n_images) % len(SHAPES))
    images = np.empty((n_images, size, size), dtype=np.float64)
    for i, label in enumerate(labels):
        radius = size * rng.uniform(0.18, 0.32)
        centre = rng.uniform(radius, size - radius, 2)
        u, v = _rotated_grid(size, centre, rng.uniform(0, 2 * np.pi))
        shape = _shape(SHAPES[label], u, v, radius)
        background = (rng.uniform(0, 110) + 35 * _smooth_noise(size, 4.0, rng))
        images[i] = background + rng.uniform(70, 150) * shape
    images += rng.normal(0, 8, images.shape)
    return np.clip(np.round(images), 0, 255).astype(np.uint8), labels


def _shape(name: str, u, v, radius: float) -> np.ndarray:
    """Soft-edged mask in ``[0, 1]`` of a shape of ``radius`` around the origin of ``(u, v)``."""
    r = np.hypot(u, v)
    if name == "disc":
        return _soft_step((radius - r) / 0.8)
    if name == "ring":
        return _soft_step((radius - r) / 0.8) * _soft_step((r - 0.55 * radius) / 0.8)
    if name == "square":
        return _soft_step((0.8 * radius - np.maximum(abs(u), abs(v))) / 0.8)
    if name == "triangle":
        angles = np.pi / 2 + 2 * np.pi * np.arange(3) / 3
        inside = np.min([0.5 * radius - (u * np.cos(a) + v * np.sin(a)) for a in angles], axis=0)
        return _soft_step(inside / 0.8)
    if name == "cross":
        arm = 0.3 * radius
        bar = np.maximum(np.minimum(arm - abs(u), radius - abs(v)),
                         np.minimum(arm - abs(v), radius - abs(u)))
        return _soft_step(bar / 0.8)
    raise ValueError(f"Unknown shape {name!r}; use one of {SHAPES}.")


# --------------------------------------------------------------------------- drawing
def _draw_cell(morphology: str, size: int, rng, max_radius: float = 0.3) -> np.ndarray:
    """Noise-free signal ``(size, size, 2)`` of one cell, intensities in counts."""
    radius = size * max_radius * rng.uniform(0.7, 1.0)
    angle = rng.uniform(0, np.pi)
    centre = size / 2 + rng.uniform(-0.06, 0.06, 2) * size
    u, v = _rotated_grid(size, centre, angle)
    if morphology == "round":
        cell = _ellipse(u, v, radius, radius * rng.uniform(0.85, 1.0))
        nucleus = _ellipse(u - rng.uniform(-2, 2), v, radius * 0.5, radius * 0.45)
    elif morphology == "elongated":
        cell = _ellipse(u, v, min(radius * rng.uniform(1.5, 1.8), size * 0.44), radius * 0.5)
        nucleus = _ellipse(u, v, radius * 0.55, radius * 0.3)
    elif morphology == "dividing":
        offset = radius * 0.6
        cell = np.maximum(_ellipse(u - offset, v, radius * 0.7, radius * 0.65),
                          _ellipse(u + offset, v, radius * 0.7, radius * 0.65))
        nucleus = np.maximum(_ellipse(u - offset * 1.1, v, radius * 0.28, radius * 0.3),
                             _ellipse(u + offset * 1.1, v, radius * 0.28, radius * 0.3))
    elif morphology == "blebbing":
        cell = _bumpy_disc(u, v, radius, n_bumps=int(rng.integers(5, 9)), depth=0.25, rng=rng)
        nucleus = _bumpy_disc(u, v, radius * 0.45, n_bumps=3, depth=0.35, rng=rng)
    else:
        raise ValueError(f"Unknown morphology {morphology!r}; use one of {MORPHOLOGIES}.")
    brightness = rng.uniform(0.6, 1.4)
    texture = 1 + 0.25 * _smooth_noise(size, 2.0, rng)
    cytoplasm = 900 * brightness * cell * texture * (1 - 0.5 * nucleus)
    dna = 2200 * rng.uniform(0.7, 1.3) * nucleus * (1 + 0.35 * _smooth_noise(size, 1.0, rng))
    return np.stack([dna, cytoplasm], axis=-1).clip(0, None)


def _draw_outlier(kind: str, size: int, rng) -> np.ndarray:
    """Noise-free signal ``(size, size, 2)`` of one of :data:`OUTLIER_KINDS`."""
    if kind == "empty":
        return np.zeros((size, size, 2))
    if kind == "debris":
        u, v = _rotated_grid(size, rng.uniform(0.3, 0.7, 2) * size, 0.0)
        speck = _ellipse(u, v, 2.5, 2.0)
        return np.stack([8000 * speck, 5000 * speck], axis=-1)
    if kind == "giant":
        return _draw_cell("round", size, rng, max_radius=0.62) * 0.8
    if kind == "out of focus":
        return ndimage.gaussian_filter(_draw_cell("round", size, rng), sigma=(5, 5, 0))
    if kind == "two cells":
        small = [_draw_cell("round", size // 2, rng) for _ in range(2)]
        signal = np.zeros((size, size, 2))
        signal[: size // 2, : size // 2] = small[0]
        signal[size // 2 :, size // 2 :] = small[1]
        return signal
    if kind == "saturated":
        return _draw_cell("round", size, rng) * 40
    raise ValueError(f"Unknown outlier kind {kind!r}; use one of {OUTLIER_KINDS}.")


def _rotated_grid(size: int, centre, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``(u, v)`` relative to ``centre``, rotated by ``angle``."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    dy, dx = rows - centre[0], cols - centre[1]
    return dx * np.cos(angle) + dy * np.sin(angle), -dx * np.sin(angle) + dy * np.cos(angle)


def _ellipse(u, v, semi_u: float, semi_v: float, edge: float = 1.2) -> np.ndarray:
    """Soft-edged filled ellipse in ``[0, 1]``; ``edge`` is the blur of the rim in pixels."""
    distance = np.hypot(u / semi_u, v / semi_v)
    return _soft_step((1 - distance) * min(semi_u, semi_v) / edge)


def _bumpy_disc(u, v, radius: float, n_bumps: int, depth: float, rng) -> np.ndarray:
    """Soft disc whose outline bulges at ``n_bumps`` random angles (blebs)."""
    phi = np.arctan2(v, u)
    outline = np.ones_like(phi)
    for centre in rng.uniform(-np.pi, np.pi, n_bumps):
        gap = np.angle(np.exp(1j * (phi - centre)))  # wrapped to [-pi, pi]
        outline += depth * np.exp(-0.5 * (gap / 0.25) ** 2)
    return _soft_step((radius * outline - np.hypot(u, v)) / 1.2)


def _soft_step(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(x, -30, 30)))


def _smooth_noise(size: int, sigma: float, rng) -> np.ndarray:
    """Gaussian noise smoothed over ``sigma`` pixels, scaled to unit standard deviation."""
    noise = ndimage.gaussian_filter(rng.normal(size=(size, size)), sigma)
    return noise / noise.std()


def _camera(signal: np.ndarray, rng) -> np.ndarray:
    """Optics blur, shot noise, offset and read noise for signals ``(N, H, W, C)``."""
    blurred = ndimage.gaussian_filter(signal, sigma=(0, 0.8, 0.8, 0))
    shot = rng.poisson(np.clip(blurred, 0, 1e7)).astype(np.float64)
    return shot + _BACKGROUND + rng.normal(0, _READ_NOISE, signal.shape)


def _to_uint16(images: np.ndarray) -> np.ndarray:
    return np.clip(np.round(images), 0, _SATURATION).astype(np.uint16)
