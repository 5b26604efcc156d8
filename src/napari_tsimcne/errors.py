"""The errors a person is shown as one line, by the command line and the napari widget alike.

The project raises these on purpose, with a message that names the problem
and what to do.  Every other exception is a bug (ours or a library's) and
keeps its traceback: ``RuntimeError`` and ``TypeError`` in particular are
not in the list, since torch raises them for its own failures.
"""

from __future__ import annotations

__all__ = ["ImageTypeError", "SetupError", "USER_ERRORS"]


class ImageTypeError(TypeError):
    """Images of a type that cannot be trained on (complex numbers, text, ragged lists).

    A ``TypeError``, as NumPy and scikit-learn raise for data of the wrong type.
    """


class SetupError(RuntimeError):
    """This installation or environment cannot do what was asked (e.g. no ``torch.distributed``)."""


#: Errors reported as their message alone.  ``ValueError`` covers bad
#: parameters, images and files (scikit-learn's ``NotFittedError`` is one);
#: ``OSError`` files that cannot be read or written (``FileNotFoundError``, a
#: full disk); ``FloatingPointError`` a training that diverged; ``MemoryError``
#: images or settings that do not fit in memory.
USER_ERRORS = (ValueError, OSError, FloatingPointError, MemoryError, ImageTypeError, SetupError)
