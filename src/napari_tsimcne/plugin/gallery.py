"""The gallery of the Explore widget: a grid of images labelled with their indices."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QRect, Qt, Signal
from qtpy.QtGui import QColor, QImage, QPainter, QPixmap
from qtpy.QtWidgets import QLabel, QSizePolicy

from .montage import gallery_columns, montage, tile_at, tile_origin

__all__ = ["GalleryView"]

#: Pixels between the images of the gallery.
GALLERY_GAP = 2


class GalleryView(QLabel):
    """A grid of images with their indices; a click on one emits its row in the map."""

    tile_clicked = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.rows = np.array([], dtype=int)
        self.columns = 1
        self._tile_shape = (1, 1)
        self._zoom = 1.0

    def show_tiles(self, tiles: np.ndarray, rows: np.ndarray, indices, width: int) -> None:
        """Show RGB ``tiles (n, h, w, 3)`` of map rows ``rows``, labelled with ``indices``."""
        self.rows = np.asarray(rows)
        self._tile_shape = tiles.shape[1:3]
        self.columns = gallery_columns(len(tiles), width)
        image = montage(tiles, self.columns, gap=GALLERY_GAP)
        self._zoom = max(width, 1) / image.shape[1]
        pixmap = _pixmap(image).scaledToWidth(
            max(width, 1), Qt.TransformationMode.FastTransformation
            if self._zoom >= 1 else Qt.TransformationMode.SmoothTransformation)
        self._label_tiles(pixmap, indices)
        self.setPixmap(pixmap)

    def show_nothing(self) -> None:
        """Empty the gallery."""
        self.clear()
        self.rows = np.array([], dtype=int)

    def _label_tiles(self, pixmap: QPixmap, indices) -> None:
        painter = QPainter(pixmap)
        font = painter.font()
        font.setPointSize(8)
        painter.setFont(font)
        for i, index in enumerate(indices):
            top, left = tile_origin(i, self._tile_shape, self.columns, GALLERY_GAP)
            box = QRect(int(left * self._zoom), int(top * self._zoom),
                        painter.fontMetrics().horizontalAdvance(str(index)) + 4,
                        painter.fontMetrics().height())
            painter.fillRect(box, QColor(0, 0, 0, 160))
            painter.setPen(QColor("white"))
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, str(index))
        painter.end()

    def tile_row(self, x: float, y: float) -> int | None:
        """Map row of the tile at widget pixel ``(x, y)``, or ``None``."""
        tile = tile_at(y / self._zoom, x / self._zoom, self._tile_shape, self.columns,
                       len(self.rows), gap=GALLERY_GAP)
        return None if tile is None else int(self.rows[tile])

    def mousePressEvent(self, event):
        row = self.tile_row(event.position().x(), event.position().y())
        if row is not None:
            self.tile_clicked.emit(row)


def _pixmap(image: np.ndarray) -> QPixmap:
    """A QPixmap of the RGB uint8 ``image (H, W, 3)``."""
    image = np.ascontiguousarray(image)
    height, width = image.shape[:2]
    qimage = QImage(image.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(qimage.copy())
