"""What the widgets tell people: errors in full, in labels that grow to show all of their text."""

from __future__ import annotations

from napari.utils.notifications import show_error
from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QLabel

__all__ = ["grow_with_text", "report_error"]


def report_error(show_status, headline: str, message: str) -> None:
    """Say what went wrong: a notification, and the whole text in a widget's status area.

    ``headline`` is a short first sentence with the point, so that it is what
    a notification cut to one line still shows; ``show_status`` puts the
    text in the widget.
    """
    text = f"{headline} {message}"
    show_status(text)
    show_error(text)


class _GrowWithText(QObject):
    """Keeps a word-wrapped label at least as tall as its text at its width.

    Layouts short of room squeeze a word-wrapped label to one line otherwise,
    cutting off the rest of its text.  A label repaints after every change of
    text or width, which is when its height is checked.
    """

    def eventFilter(self, label, event):
        if event.type() in (QEvent.Type.Paint, QEvent.Type.Resize):
            needed = label.heightForWidth(label.width())
            if needed > 0 and needed != label.minimumHeight():
                label.setMinimumHeight(needed)
        return False


def grow_with_text(label: QLabel) -> None:
    """Keep the word-wrapped ``label`` tall enough for all of its text."""
    label.installEventFilter(_GrowWithText(label))
