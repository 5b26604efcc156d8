"""Files written whole or not at all.

Every file napari-tsimcne writes (embeddings, map plots and tables, model
files, checkpoints, the demo's summary) goes through :func:`write_file`: the
content goes to a temporary file in the target's folder, is flushed to disk
(``fsync``) and is then renamed over the target.  A full disk, a read-only
folder or a crash during the write leaves any earlier file there unchanged
and no temporary file behind.

Inside a :func:`together` block the renames wait for the end of the block, so
that the files of one run appear as one set: if any write of the block fails,
none of its new files appear and the earlier set stays complete.  The renames
at the end need no disk space; only a crash in the instant between two of
them (a power cut) could leave old and new files side by side.
"""

from __future__ import annotations

import errno
import os
import tempfile
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

__all__ = ["together", "write_file"]

#: The (temporary, target) renames a :func:`together` block has put off.
_pending: ContextVar[list | None] = ContextVar("pending_renames", default=None)

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def write_file(path, write, *, text: bool = False) -> Path:
    """Write ``path`` whole or not at all: ``write(file)`` fills a temporary file.

    ``file`` is open for bytes, or for UTF-8 text with newlines as written when
    ``text`` is true.  Returns ``path``.  Any failure to write, including one
    that a library reports as another exception (torch reports a full disk as
    ``RuntimeError: ... unexpected pos``), raises ``OSError`` with the
    system's error number and a one-line message naming the file.
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"Cannot write {path}: the folder {folder} does not exist.")
    try:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as error:
        raise _write_error(path, error) from None
    temporary = Path(name)
    try:
        # mkstemp creates the file readable by its owner only; the result gets
        # the permissions of any other new file.
        os.chmod(temporary, 0o666 & ~_current_umask())
        options = {"mode": "w", "encoding": "utf-8", "newline": ""} if text else {"mode": "wb"}
        with os.fdopen(handle, **options) as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        cause = _os_error_behind(error)
        if cause is None:
            raise
        raise _write_error(path, cause) from None
    pending = _pending.get()
    if pending is None:
        _rename([(temporary, path)])
    else:
        pending.append((temporary, path))
    return path


@contextmanager
def together():
    """Publish the files :func:`write_file` writes in this block together, at its end.

    If the block raises, its new files are deleted and the earlier ones stay.
    """
    pending = []
    token = _pending.set(pending)
    try:
        yield
    except BaseException:
        for temporary, _ in pending:
            temporary.unlink(missing_ok=True)
        raise
    finally:
        _pending.reset(token)
    _rename(pending)


def _rename(renames) -> None:
    """Rename the temporary files over their targets, then make the renames durable."""
    for index, (temporary, path) in enumerate(renames):
        try:
            os.replace(temporary, path)
        except OSError as error:
            for left, _ in renames[index:]:
                left.unlink(missing_ok=True)
            raise _write_error(path, error) from None
    for folder in {path.parent for _, path in renames}:
        _sync_folder(folder)


def _sync_folder(folder: Path) -> None:
    """fsync a folder, so that a rename in it survives a power cut (POSIX only)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:  # folders cannot be opened on Windows, where renames need no sync
        return
    try:
        os.fsync(handle)
    except OSError:  # some file systems refuse fsync on a folder; the rename is done
        pass
    finally:
        os.close(handle)


def _os_error_behind(error: BaseException) -> OSError | None:
    """The system's write error ``error`` is, or that a library turned into it.

    torch's archive writer, for one, catches the ``OSError`` of a full disk
    and raises a ``RuntimeError`` in its place, with the ``OSError`` as its
    context.  Interrupts (``KeyboardInterrupt``) are never converted.
    """
    if not isinstance(error, Exception):
        return None
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError) and error.errno is not None:
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _write_error(path: Path, error: OSError) -> OSError:
    """``OSError`` with ``error``'s number and a message naming ``path`` and what to do."""
    if error.errno in _DISK_FULL:
        advice = "Free some disk space or choose another folder."
    else:
        advice = "Choose a folder you can write to."
    result = OSError(f"Could not write {path} ({error.strerror or error}); any earlier "
                     f"file there is unchanged. {advice}")
    result.errno = error.errno  # set after construction, so the message stays one plain line
    return result


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
