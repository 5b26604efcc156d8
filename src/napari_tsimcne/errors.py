"""The errors a person is shown as one line, by the command line and the napari widget alike.

The project raises these on purpose, with a message that names the problem
and what to do.  Every other exception is a bug (ours or a library's) and
keeps its traceback: ``RuntimeError`` and ``TypeError`` in particular are
not in the list, since torch raises them for its own failures.  Warnings
about the caller's input point at the caller's line (:func:`warn`).
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["ImageTypeError", "SetupError", "USER_ERRORS", "warn"]

_PACKAGE_FOLDER = os.path.dirname(os.path.abspath(__file__)) + os.sep


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


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` at the first caller outside this package and scikit-learn.

    A warning about the caller's input (images far outside the training
    range, a resume without checkpoints) then names the caller's line,
    however many of the package's functions, and scikit-learn's wrapper of
    ``transform``, lie between.
    """
    skipped = [_PACKAGE_FOLDER]
    if (sklearn := sys.modules.get("sklearn")) is not None:
        skipped.append(os.path.dirname(os.path.abspath(sklearn.__file__)) + os.sep)
    # Level 2 is this function's caller; each frame inside the skipped folders adds one.
    frame, stacklevel = sys._getframe(1), 2
    while frame.f_back is not None and frame.f_code.co_filename.startswith(tuple(skipped)):
        frame, stacklevel = frame.f_back, stacklevel + 1
    warnings.warn(message, category, stacklevel=stacklevel)
