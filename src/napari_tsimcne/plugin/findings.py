"""The Explore widget's tabs of findings: the most unusual images, and groups of near-duplicates.

What is found becomes a column of the explored map's table, its layer's
features: ``outlier_score`` and ``duplicate_group``.
"""

from __future__ import annotations

from napari.layers import Points
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from .map_layers import map_record
from .map_table import map_coordinates
from .outliers import group_numbers, most_unusual, near_duplicate_groups, outlier_scores

__all__ = ["FindingsTabs"]

#: Outliers listed.
OUTLIER_LIST_LENGTH = 25


class FindingsTabs(QTabWidget):
    """Two tabs, outliers and near-duplicates of the explored map, each found with a button.

    Signals: :attr:`rows_chosen` carries the map rows of a clicked entry,
    :attr:`message` what to tell the user, :attr:`color_by` a column the map
    is best coloured by now.
    """

    rows_chosen = Signal(list)
    message = Signal(str)
    color_by = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._layer: Points | None = None
        self.outlier_button = QPushButton("Find outliers")
        self.outlier_list = QListWidget()
        self.duplicate_tolerance = QDoubleSpinBox(minimum=0.01, maximum=1.0, singleStep=0.05,
                                                  value=0.25)
        self.duplicate_tolerance.setToolTip(
            "Images count as near-duplicates when closer than this fraction of the typical "
            "distance between neighbouring images (in the network's features).")
        self.duplicate_button = QPushButton("Find near-duplicates")
        self.duplicate_list = QListWidget()
        outliers = QWidget()
        QVBoxLayout(outliers).addWidget(self.outlier_button)
        outliers.layout().addWidget(self.outlier_list)
        duplicates = QWidget()
        row = QHBoxLayout()
        row.addWidget(QLabel("Tolerance"))
        row.addWidget(self.duplicate_tolerance)
        row.addWidget(self.duplicate_button)
        QVBoxLayout(duplicates).addLayout(row)
        duplicates.layout().addWidget(self.duplicate_list)
        self.addTab(outliers, "Outliers")
        self.addTab(duplicates, "Near-duplicates")
        self.setMaximumHeight(220)
        self.outlier_button.clicked.connect(self.find_outliers)
        self.duplicate_button.clicked.connect(self.find_duplicates)
        self.outlier_list.itemClicked.connect(self._on_item_clicked)
        self.duplicate_list.itemClicked.connect(self._on_item_clicked)

    def explore(self, layer: Points | None) -> None:
        """Look for findings in the map ``layer`` from now on (``None``: no map); lists emptied."""
        self._layer = layer
        self.outlier_list.clear()
        self.duplicate_list.clear()
        for widget in (self.outlier_button, self.duplicate_tolerance, self.duplicate_button):
            widget.setEnabled(layer is not None)

    def _vectors(self, need_features: bool):
        """The vectors to compare images by, and whether they are backbone features.

        The network's backbone features where the map has them, else (when
        ``need_features`` allows) the map's coordinates; ``None`` without either.
        """
        record = map_record(self._layer)
        if record is None:
            return None, False
        if record.backbone_features is not None:
            return record.backbone_features, True
        if need_features:
            self.message.emit("Near-duplicates need the network's features: train the map, "
                              "or place the images with a loaded model.")
            return None, False
        return map_coordinates(self._layer.features), False

    def find_outliers(self) -> None:
        """Score every image, colour the map by the score and list the most unusual images."""
        vectors, are_features = self._vectors(need_features=False)
        if vectors is None:
            return
        scores = outlier_scores(vectors, normalize=are_features)
        self._layer.features = self._layer.features.assign(outlier_score=scores)
        self.color_by.emit("outlier_score")
        indices = self._layer.features["index"].to_numpy()
        self.outlier_list.clear()
        for row in most_unusual(scores, OUTLIER_LIST_LENGTH):
            self._add(self.outlier_list, f"image {indices[row]} · score {scores[row]:.2f}",
                      [int(row)])
        where = "network features" if are_features else "map"
        self.message.emit(f"Outlier score (local outlier factor in the {where}): about 1 is "
                          "typical, clearly above 1 sits apart. Click an entry to see it.")

    def find_duplicates(self) -> None:
        """Group nearly identical images, mark the groups in the table and list them."""
        vectors, _ = self._vectors(need_features=True)
        if vectors is None:
            return
        groups = near_duplicate_groups(vectors, self.duplicate_tolerance.value())
        self._layer.features = self._layer.features.assign(
            duplicate_group=group_numbers(groups, len(vectors)))
        indices = self._layer.features["index"].to_numpy()
        self.duplicate_list.clear()
        for number, group in enumerate(groups):
            self._add(self.duplicate_list,
                      f"group {number}: images " + ", ".join(map(str, indices[group])),
                      [int(r) for r in group])
        self.setCurrentIndex(1)
        self.message.emit(f"{len(groups)} group(s) of near-duplicates. Click one to see it.")

    @staticmethod
    def _add(entries: QListWidget, text: str, rows: list[int]) -> None:
        item = QListWidgetItem(text)
        item.setData(Qt.ItemDataRole.UserRole, rows)
        entries.addItem(item)

    def _on_item_clicked(self, item: QListWidgetItem) -> None:
        self.rows_chosen.emit(item.data(Qt.ItemDataRole.UserRole))
