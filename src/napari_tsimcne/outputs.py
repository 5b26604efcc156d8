"""The ``--out`` folder of the command line: checked before the work, written as one set.

Before training or placing images, a command checks its folder
(:func:`prepare` and :func:`check_space`): that files can be created there,
that it holds no outputs of another command (nor, for ``fit``, of an earlier
fit) unless ``--overwrite`` allows replacing them, and that the disk has room
for an estimate of the outputs.  The outputs are then written inside
:func:`publish`, so that the new set appears whole or the earlier set stays
complete (:mod:`napari_tsimcne.atomic`), together with a small marker file
that records which command wrote the folder.
"""

from __future__ import annotations

import errno
import json
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from . import __version__
from .atomic import together, write_file

__all__ = ["MARKER", "OUTPUT_FILES", "check_space", "model_sizes", "prepare", "publish"]

#: Records which command wrote the folder: ``{"command": "fit", ...}``.
MARKER = ".napari-tsimcne.json"
#: The files the commands write; any of them in a folder is an earlier run's output.
OUTPUT_FILES = ("embedding.csv", "embedding.npz", "model.pt", "map.png", "held_out.csv",
                "summary.json")
#: Subfolder of ``fit``'s checkpoints.
CHECKPOINTS = "checkpoints"


def prepare(folder: Path, command: str, *, overwrite: bool = False, resume: bool = False
            ) -> Path:
    """Create ``folder`` and check that ``command`` may write its outputs there.

    Refuses (``ValueError``) a folder holding outputs that ``command`` is not
    meant to replace: those of another command, and for ``fit`` those of an
    earlier fit, unless it ``resume``s that run; ``overwrite`` allows all.
    For ``fit``, ``overwrite`` without ``resume`` deletes the earlier run's
    checkpoints, which the new run could neither use nor keep apart from its own.
    Raises ``OSError`` if no file can be created in the folder.
    """
    from .checkpoint import CheckpointFolder

    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--out {folder} is a file; pass a folder for the results.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as error:
        failure = OSError(f"Cannot write to --out {folder} ({error.strerror or error}); "
                          "choose a folder you can write to.")
        failure.errno = error.errno
        raise failure from None
    checkpoints = CheckpointFolder(folder / CHECKPOINTS).paths() if command == "fit" else []
    if overwrite:
        if not resume:
            for path in checkpoints:
                path.unlink(missing_ok=True)
        return folder
    present = [name for name in OUTPUT_FILES if (folder / name).exists()]
    if checkpoints and not resume:
        present.append(f"{CHECKPOINTS}/")
    previous = _written_by(folder)
    own = previous == command and (command != "fit" or resume)
    if not present or own or (command == "fit" and resume and previous is None):
        return folder
    author = f"'napari-tsimcne {previous}'" if previous else "an earlier run"
    ways = ["--resume to continue that run"] if checkpoints else []
    ways += ["--overwrite to replace them", "another --out folder"]
    raise ValueError(f"--out {folder} holds the outputs of {author} ({', '.join(present)}); "
                     f"use {', '.join(ways[:-1])} or {ways[-1]}.")


def check_space(folder: Path, needed: int) -> None:
    """``OSError`` (``ENOSPC``) if ``folder``'s disk has less than ``needed`` bytes free."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        error = OSError(f"Not enough free disk space in --out {folder}: the outputs need about "
                        f"{_mib(needed)}, {_mib(free)} are free. Free some space or choose "
                        "another --out folder.")
        error.errno = errno.ENOSPC
        raise error


@contextmanager
def publish(folder: Path, command: str):
    """Write the outputs of ``command`` to ``folder`` in this block; they appear at its end."""
    with together():
        yield
        marker = {"command": command, "napari-tsimcne": __version__}
        write_file(folder / MARKER, lambda file: file.write(json.dumps(marker) + "\n"),
                   text=True)


def model_sizes(estimator, n_images: int, n_channels: int) -> tuple[int, int]:
    """About the bytes of ``estimator``'s model file and of one of its checkpoints.

    Counted on its network built on torch's meta device, which holds no data:
    the sizes are known before training, at no cost.
    """
    import torch

    from .checkpoint import checkpoint_size
    from .devices import resolve_backbone, resolve_device
    from .network import TSimCNENetwork

    backbone = resolve_backbone(estimator.backbone, resolve_device(estimator.device))
    with torch.device("meta"):
        # The pre-training head is the widest; the model file holds the 2-D one.
        network = TSimCNENetwork(backbone, n_channels,
                                 max(estimator.out_dim, estimator.pretrain_dim),
                                 estimator.hidden_dim)
    tensors = sum(t.numel() * t.element_size() for t in (*network.parameters(),
                                                         *network.buffers()))
    embedding = n_images * estimator.out_dim * 4
    return tensors + embedding + 2**16, checkpoint_size(network)


def _written_by(folder: Path) -> str | None:
    """The command of ``folder``'s marker, or None without a readable one."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    command = marker.get("command") if isinstance(marker, dict) else None
    return command if isinstance(command, str) else None


def _mib(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.1f} MiB"
