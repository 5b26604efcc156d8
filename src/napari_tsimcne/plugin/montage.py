"""Images side by side: gallery montages, and thumbnail atlases laid out on the map."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import MapFrame

__all__ = [
    "Atlas",
    "atlas",
    "atlas_cells",
    "atlas_grid",
    "gallery_columns",
    "montage",
    "tile_at",
    "tile_origin",
]

#: Smallest side of a thumbnail on the screen, in pixels, for it to be readable.
MIN_THUMBNAIL_PIXELS = 48
#: Largest side of an atlas image in pixels (its memory grows with the square).
MAX_ATLAS_PIXELS = 3072


# ----------------------------------------------------------------- galleries
def tile_origin(index: int, tile_shape, columns: int, gap: int = 2) -> tuple[int, int]:
    """Top-left pixel ``(row, col)`` of tile ``index`` in a :func:`montage`."""
    h, w = tile_shape
    return (index // columns) * (h + gap), (index % columns) * (w + gap)


def montage(
    tiles, columns: int, *, gap: int = 2, background=(30, 30, 30)
) -> np.ndarray:
    """Arrange RGB ``tiles (n, h, w, 3)`` in rows of ``columns``; returns uint8 ``(H, W, 3)``.

    Tile ``i`` sits in row ``i // columns`` and column ``i % columns`` with
    ``gap`` pixels of ``background`` between tiles (see :func:`tile_at`).
    """
    tiles = np.asarray(tiles, dtype=np.uint8)
    n, h, w = tiles.shape[:3]
    columns = max(1, min(int(columns), n))
    rows = -(-n // columns)
    image = np.empty((rows * (h + gap) - gap, columns * (w + gap) - gap, 3), np.uint8)
    image[...] = background
    for i, tile in enumerate(tiles):
        top, left = tile_origin(i, (h, w), columns, gap)
        image[top : top + h, left : left + w] = tile
    return image


def tile_at(row: float, col: float, tile_shape, columns: int, n_tiles: int,
            *, gap: int = 2) -> int | None:
    """Index of the :func:`montage` tile under pixel ``(row, col)``, or ``None`` (gap, outside)."""
    h, w = tile_shape
    r, c = int(row // (h + gap)), int(col // (w + gap))
    inside = row % (h + gap) < h and col % (w + gap) < w
    index = r * columns + c
    if not inside or row < 0 or col < 0 or c >= columns or index >= n_tiles:
        return None
    return index


def gallery_columns(n_tiles: int, width: int, min_tile: int = 56) -> int:
    """Columns of a gallery ``width`` pixels wide: near-square, tiles at least ``min_tile``."""
    return int(max(1, min(np.ceil(np.sqrt(max(n_tiles, 1))), width // min_tile)))


# ------------------------------------------------------------------ atlases
@dataclass
class Atlas:
    """Thumbnails laid out on the map's grid, as an RGBA image in map data coordinates.

    Attributes
    ----------
    image : uint8 array (rows * t, cols * t, 4)
        Transparent where a grid cell holds no image.
    indices : int array (K,)
        The row of the map shown in each occupied cell.
    scale : float
        Data units per atlas pixel.
    origin : (float, float)
        Data coordinates ``(y, x)`` of the atlas' top-left corner.
    """

    image: np.ndarray
    indices: np.ndarray
    scale: float
    origin: tuple[float, float]

    def layer_transform(self, frame: MapFrame) -> tuple[tuple[float, float], tuple[float, float]]:
        """``(scale, translate)`` of an Image layer that shows the atlas on a map in ``frame``.

        napari centres pixel ``i`` on ``translate + scale * i``, so the
        translation is shifted by half a pixel to put the top-left corner of
        the atlas on ``origin``.
        """
        pixel = self.scale * frame.scale
        translate = frame.to_world(self.origin) + pixel / 2
        return (pixel, pixel), (float(translate[0]), float(translate[1]))


def atlas_cells(coordinates, n_cells: int = 24, coverage: float = 99.0):
    """Choose one image per cell of a square grid over the map.

    The grid of ``n_cells`` cells along the longer side covers the central
    ``coverage`` percent of ``coordinates (N, 2)``; in every occupied cell
    the image closest to the cell's centre is chosen.

    Returns ``(cells (K, 2) int grid positions, indices (K,), cell size, origin (2,))``.
    """
    coordinates = np.asarray(coordinates, dtype=np.float64)
    tail = (100 - coverage) / 2
    low, high = np.percentile(coordinates, [tail, 100 - tail], axis=0)
    cell = max(float(np.max(high - low)), 1e-12) / n_cells
    inside = np.all((coordinates >= low) & (coordinates <= low + n_cells * cell), axis=1)
    grid = np.clip(np.floor((coordinates - low) / cell).astype(int), 0, n_cells - 1)
    offset = np.linalg.norm(coordinates - (low + (grid + 0.5) * cell), axis=1)
    candidates = np.flatnonzero(inside)
    order = candidates[np.lexsort((offset[candidates], grid[candidates, 1], grid[candidates, 0]))]
    keys = grid[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = np.any(keys[1:] != keys[:-1], axis=1)
    chosen = order[first]
    return grid[chosen], chosen, cell, low


def atlas_grid(n_points: int, extent_pixels: float) -> tuple[int, int]:
    """Grid cells along the side of an atlas, and thumbnail side in pixels, for the view.

    ``extent_pixels`` is how many screen pixels the map's side spans at the
    current zoom.  Each thumbnail gets at least :data:`MIN_THUMBNAIL_PIXELS`
    on the screen, and there are no more cells along a side than about twice
    the square root of the number of points (a finer grid would leave most
    cells empty).  The thumbnails are drawn at their screen size, between 16
    and 128 pixels, so that they are sharp without wasting memory.
    """
    by_screen = extent_pixels / MIN_THUMBNAIL_PIXELS
    by_points = 2 * np.sqrt(max(n_points, 1))
    n_cells = int(np.clip(np.floor(min(by_screen, by_points)), 2, 48))
    size = int(np.clip(round(extent_pixels / n_cells), 16, min(128, MAX_ATLAS_PIXELS // n_cells)))
    return n_cells, size


def atlas(coordinates, thumbnails_of, *, n_cells: int = 24, thumbnail_size: int = 32) -> Atlas:
    """Build an :class:`Atlas`: a thumbnail of one image in each occupied cell of the map.

    Parameters
    ----------
    coordinates : array (N, 2)
        The map's data coordinates ``(y, x)``.
    thumbnails_of : callable
        Maps an array of map rows ``(K,)`` to RGB uint8 images ``(K, h, w, 3)``.
    n_cells : int, default 24
        Grid cells along the map's longer side.
    thumbnail_size : int, default 32
        Side of each thumbnail in pixels.
    """
    from skimage.transform import resize

    cells, indices, cell, origin = atlas_cells(coordinates, n_cells)
    thumbnails = np.asarray(thumbnails_of(indices))
    t = int(thumbnail_size)
    if thumbnails.shape[1:3] != (t, t):
        thumbnails = resize(thumbnails, (len(thumbnails), t, t, 3), anti_aliasing=True,
                            preserve_range=True).round().astype(np.uint8)
    image = np.zeros((n_cells * t, n_cells * t, 4), np.uint8)
    for (row, col), thumbnail in zip(cells, thumbnails):
        image[row * t : (row + 1) * t, col * t : (col + 1) * t, :3] = thumbnail
        image[row * t : (row + 1) * t, col * t : (col + 1) * t, 3] = 255
    return Atlas(image, indices, cell / t, (float(origin[0]), float(origin[1])))
