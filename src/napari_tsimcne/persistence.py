"""The model file: a torch zip archive holding only tensors and plain values.

Files are read with ``torch.load(weights_only=True)``, which refuses to
unpickle arbitrary objects, so opening a model file from someone else cannot
run code.  Writes go to a temporary file in the same folder, are flushed to
disk and then renamed over the target, so a crash never leaves a truncated
file in place of a good one.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch

__all__ = ["FORMAT", "FORMAT_VERSION", "read_model_file", "write_model_file"]

FORMAT = "napari-tsimcne-model"
FORMAT_VERSION = 1


def write_model_file(path, payload: dict, kind: str = FORMAT) -> Path:
    """Atomically write ``payload`` (tensors and plain values) to ``path``.

    ``kind`` names the file's format (models, or checkpoints).  A full disk
    raises ``OSError`` naming the file, and leaves any earlier file intact.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"Cannot save to {path}: the folder {folder} does not exist.")
    payload = {"format": kind, "format_version": FORMAT_VERSION, **payload}
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        # mkstemp creates the file readable by its owner only; give the model
        # file the permissions any other new file would get.
        os.chmod(temporary, 0o666 & ~_current_umask())
        with os.fdopen(handle, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise OSError(error.errno, f"Could not write {path} ({error.strerror or error}); "
                      "any earlier file there is unchanged. Free disk space or choose "
                      "another folder.") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_model_file(path, kind: str = FORMAT) -> dict:
    """Read and check a file of format ``kind`` written by :func:`write_model_file`.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming
    the file for one that is damaged, foreign or from a newer format version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {path}.")
    try:
        # torch.load does not verify the archive's CRC-32 checksums, so
        # altered bytes in the weights would otherwise load silently.
        with zipfile.ZipFile(path) as archive:
            corrupt_member = archive.testzip()
        if corrupt_member is not None:
            raise ValueError(f"checksum mismatch in {corrupt_member}")
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # garbage makes the unpickler fail in many ways
        reason = (str(error).splitlines() or [type(error).__name__])[0][:300]
        if isinstance(error, pickle.UnpicklingError) or "weights_only" in reason:
            # torch's own message advises loading with weights_only=False, which
            # would run whatever code the file carries: never pass that on.
            reason = ("it holds Python objects other than tensors and plain values, which "
                      "are refused without being run")
        raise ValueError(
            f"{path} is not a napari-tsimcne model file, or it is damaged "
            f"(truncated or altered): {reason}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != kind:
        what = "model file" if kind == FORMAT else "checkpoint"
        raise ValueError(
            f"{path} is a torch file but not a napari-tsimcne {what} (its format is "
            f"{payload.get('format') if isinstance(payload, dict) else 'unknown'!r}); "
            "save models with TSimCNE.save or `napari-tsimcne fit`."
        )
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path} was written in model format version {version}, newer than this "
            f"napari-tsimcne reads ({FORMAT_VERSION}). Upgrade napari-tsimcne."
        )
    return payload
