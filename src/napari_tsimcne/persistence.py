"""The model file: a torch zip archive holding only tensors and plain values.

Files are read with ``torch.load(weights_only=True)``, which refuses to
unpickle arbitrary objects, so opening a model file from someone else cannot
run code.  Files are written with :func:`napari_tsimcne.atomic.write_file`, so
a crash or a full disk never leaves a truncated file in place of a good one.
"""

from __future__ import annotations

import pickle
import zipfile
from functools import partial
from pathlib import Path

import numpy as np
import torch

from .atomic import write_file

__all__ = ["FORMAT", "FORMAT_VERSION", "looks_like_model_file", "plain_value", "read_model_file",
           "write_model_file"]

FORMAT = "napari-tsimcne-model"
FORMAT_VERSION = 1


def write_model_file(path, payload: dict, kind: str = FORMAT) -> Path:
    """Write ``payload`` (tensors and plain values) to ``path`` whole or not at all.

    ``kind`` names the file's format (models, or checkpoints).  A full disk
    raises ``OSError`` naming the file, and leaves any earlier file intact
    (see :func:`napari_tsimcne.atomic.write_file`).
    """
    payload = {"format": kind, "format_version": FORMAT_VERSION, **payload}
    return write_file(path, partial(torch.save, payload))


def looks_like_model_file(path) -> bool:
    """Whether ``path`` is a torch archive whose record names :data:`FORMAT`.

    Reads only the archive's small pickled record, as bytes, without
    unpickling or checksumming the weights: a cheap answer for napari's
    "can you read this?", before :func:`read_model_file` does the full check.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            record = next((name for name in archive.namelist()
                           if name.endswith("/data.pkl") or name == "data.pkl"), None)
            return record is not None and FORMAT.encode() in archive.read(record)
    except (OSError, zipfile.BadZipFile):
        return False


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


def plain_value(value):
    """``value`` with numpy scalars and arrays as Python numbers, lists and tuples.

    ``torch.load(weights_only=True)`` reads only plain values back, so a
    parameter such as ``batch_size=np.int64(256)`` must be stored as an int.
    """
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return plain_value(value.tolist())
    if isinstance(value, (list, tuple)):
        return type(value)(plain_value(v) for v in value)
    return value
