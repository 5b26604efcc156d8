"""The Explore widget's "Colour by" box and the colour key under it."""

from __future__ import annotations

from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import QComboBox, QLabel

from .colors import Coloring, legend_columns, legend_html

__all__ = ["ColorChoice"]

#: What the box offers for plain colours.
PLAIN = "none"
#: Pixels between the columns of a colour key.
LEGEND_SPACING = 16


class ColorChoice(QObject):
    """The box that chooses the column to colour a map by, and the key of the colours.

    Not a widget itself: the Explore widget lays out :attr:`box` and
    :attr:`legend`.  :attr:`chosen` carries the column the user picks
    (``None`` for plain colours).
    """

    chosen = Signal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.box = QComboBox()
        self.legend = QLabel()
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self._coloring: Coloring | None = None
        self.box.currentTextChanged.connect(self._on_text_changed)

    def offer(self, columns, current: str | None) -> None:
        """Offer plain colours and ``columns``, with ``current`` (``None``: plain) chosen."""
        self.box.blockSignals(True)
        self.box.clear()
        self.box.addItems([PLAIN, *columns])
        self.box.blockSignals(False)
        self.show_chosen(current)

    def show_chosen(self, column: str | None) -> None:
        """Show ``column`` (``None``: plain) as chosen, without announcing it."""
        self.box.blockSignals(True)
        self.box.setCurrentText(column or PLAIN)
        self.box.blockSignals(False)

    def show_key(self, coloring: Coloring | None, width: int) -> None:
        """The key of ``coloring`` in as many columns as ``width`` pixels hold (none: hidden)."""
        self._coloring = coloring
        if coloring is None or not coloring.legend:
            self.legend.clear()
            self.legend.setVisible(False)
            return
        metrics = self.legend.fontMetrics()
        columns = legend_columns(
            [metrics.horizontalAdvance(f"■ {label}") for label, _ in coloring.legend],
            width, LEGEND_SPACING)
        self.legend.setText(legend_html(coloring, columns=columns))
        self.legend.setVisible(True)

    def fit_key(self, width: int) -> None:
        """Lay the key out again for ``width`` pixels."""
        self.show_key(self._coloring, width)

    def _on_text_changed(self, text: str) -> None:
        self.chosen.emit(None if text in (PLAIN, "") else text)
