"""``TSimCNEModel``: a trained map, apart from the settings and the fitting.

As openTSNE separates ``TSNE`` (settings, fit) from the fitted
``TSNEEmbedding``, :class:`~napari_tsimcne.TSimCNE` trains and a
:class:`TSimCNEModel` is what training made: the network with what placing
new images on its map needs (image shape, intensity mapping) and the record
of the training (map of the training images, losses, the settings and seed it
used, versions).  It is the estimator's ``model_`` and what a model file
holds; the command line's ``transform`` and ``info`` and the napari reader
load one without an estimator.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import __version__, data, distributed
from .data import as_image_stack, to_uint8_tensor
from .devices import resolve_device
from .errors import warn
from .network import TSimCNENetwork
from .persistence import plain_value, read_model_file, write_model_file
from .schedule import check_epochs
from .trainer import embed, inference_batch_size

__all__ = ["SAVED_PARAMS", "TSimCNEModel", "current_versions", "storable_params"]

#: Parameters of :class:`~napari_tsimcne.TSimCNE` that describe the model and
#: go into the model file (those of the machine and the run, such as
#: ``device`` or ``callbacks``, do not).
SAVED_PARAMS = (
    "epochs", "batch_size", "out_dim", "backbone", "augmentation", "lr", "image_size",
    "random_state", "pretrain_dim", "pretrain_loss", "hidden_dim", "weight_decay",
    "momentum", "warmup_epochs", "crop_scale", "precision", "recipe", "time_budget", "axes",
)


def storable_params(params: dict) -> dict:
    """The :data:`SAVED_PARAMS` of an estimator's ``params``, as a model file stores them.

    Numpy values become plain ones; a callable augmentation and a
    ``RandomState`` become None, since neither a user's function nor a
    generator's state is stored.
    """
    stored = {name: plain_value(params[name]) for name in SAVED_PARAMS}
    if callable(stored["augmentation"]):
        stored["augmentation"] = None
    if not isinstance(stored["random_state"], (int, type(None))):
        stored["random_state"] = None
    return stored


def current_versions() -> dict[str, str]:
    """Versions of napari-tsimcne, torch and Python running now, as a model records them."""
    return {"napari-tsimcne": __version__, "torch": str(torch.__version__),
            "python": platform.python_version()}


@dataclass(eq=False, repr=False)
class TSimCNEModel:
    """A trained t-SimCNE map: places images on it and writes it to a model file.

    Made by :meth:`napari_tsimcne.TSimCNE.fit` (its ``model_``) or read by
    :meth:`load`.

    Attributes
    ----------
    network : TSimCNENetwork
        The trained network, in eval mode, on ``device``.
    device : torch.device
        Where :meth:`transform` runs.
    backbone : str
        The backbone of the network, e.g. ``"resnet18"``.
    image_shape : tuple (H, W, C)
        Size and channel count images are brought to.
    intensity_range : ndarray of shape (C, 2)
        Per-channel ``(low, high)`` mapped to ``[0, 1]``; see :mod:`napari_tsimcne.data`.
    embedding : ndarray of shape (n_images, out_dim), float32
        Map of the training images.
    loss_history : list of ndarray
        Mean loss of every epoch, one float32 array per stage that ran.
    stopped_early : bool
        Whether a callback stopped the training in its 2-D stages.
    epochs : tuple of int
        Epochs per stage of the training (the plan, for a time budget).
    batch_size : int
    augmentation : str or callable
        Batch size and augmentation the training used (``"auto"`` resolved;
        a user's augmentation function is not stored: None after :meth:`load`).
    random_state : int
        The seed the training used.
    checkpoint_folder : str or None
        Where the training wrote its checkpoints.
    params : dict
        The estimator's :data:`SAVED_PARAMS` as stored (see :func:`storable_params`).
    versions : dict
        Versions of napari-tsimcne, torch and Python that trained the model.
    """

    network: TSimCNENetwork
    device: torch.device
    backbone: str
    image_shape: tuple[int, int, int]
    intensity_range: np.ndarray
    embedding: np.ndarray
    loss_history: list[np.ndarray]
    stopped_early: bool
    epochs: tuple[int, ...]
    batch_size: int
    augmentation: str | Callable | None
    random_state: int | None
    checkpoint_folder: str | None
    params: dict
    versions: dict

    def __repr__(self) -> str:
        height, width, channels = self.image_shape
        return (f"TSimCNEModel(backbone={self.backbone!r}, image_shape=({height}, {width}, "
                f"{channels}), n_images={len(self.embedding)}, device={str(self.device)!r})")

    @property
    def axes(self) -> str:
        """Layout of the training images' array, read by default by :meth:`transform`."""
        # Files from before the axes parameter existed read arrays as "auto" does.
        return self.params.get("axes", "auto")

    # ------------------------------------------------------------ transform
    def transform(self, X, axes=None, return_features: bool = False):
        """Place images ``X`` on the map.

        Parameters
        ----------
        X
            Images in any form :func:`napari_tsimcne.data.as_image_stack`
            accepts, with the channel count of the training images; they are
            resized to ``image_shape`` if needed.
        axes : str or None, default None
            Layout of an array ``X`` (see :mod:`napari_tsimcne.axes`); ``None``
            is that of the training images, :attr:`axes`.
        return_features : bool, default False
            Also return the backbone features ``H``, computed in the same
            forward pass as the embedding (half the work of calling
            :meth:`transform` and :meth:`features`).

        Returns
        -------
        embedding : ndarray of shape (n_images, out_dim), float32
        features : ndarray of shape (n_images, feature_dim), float32
            Only with ``return_features=True``.
        """
        return self._run(X, axes, "both" if return_features else "embedding")

    def features(self, X, axes=None) -> np.ndarray:
        """Backbone features ``H`` of images ``X``, float32 ``(n_images, feature_dim)``.

        ``feature_dim`` is that of the backbone, e.g. 512 for ResNet-18;
        ``X`` and ``axes`` as in :meth:`transform`.
        """
        return self._run(X, axes, "features")

    def _run(self, X, axes, output: str):
        stack = as_image_stack(X, axes=self.axes if axes is None else axes)
        height, width, channels = self.image_shape
        if stack.n_channels != channels:
            raise ValueError(
                f"X has {stack.n_channels} channel(s) but the model was trained on {channels}. "
                f"Pass images with {channels} channel(s), channels last."
            )
        warning = data.far_outside(stack, self.intensity_range)
        if warning is not None:
            warn(warning)
        step = inference_batch_size(self.batch_size)
        batches = (
            to_uint8_tensor(stack, self.intensity_range, (height, width), start=start,
                            stop=min(start + step, len(stack)))
            for start in range(0, len(stack), step)
        )
        return embed(self.network, batches, output=output, device=self.device)

    # ----------------------------------------------------------- save/load
    def save(self, path) -> Path:
        """Write the model to ``path``; returns the path.

        The file opens with ``torch.load(weights_only=True)`` (see
        :mod:`napari_tsimcne.persistence`).  In distributed training only
        rank 0 writes; the other processes return the path without writing.
        """
        if not distributed.is_main_process():
            return Path(path)
        return write_model_file(path, {
            "params": self.params,
            "backbone": self.backbone,
            "image_shape": list(self.image_shape),
            "intensity_range": torch.from_numpy(np.asarray(self.intensity_range,
                                                           dtype=np.float64)),
            "output_dim": self.network.head.out_dim,
            "state_dict": {k: v.detach().cpu() for k, v in self.network.state_dict().items()},
            "embedding": torch.from_numpy(self.embedding),
            "loss_history": [torch.from_numpy(h) for h in self.loss_history],
            "stopped_early": self.stopped_early,
            "epochs_used": list(self.epochs),
            "batch_size_used": int(self.batch_size),
            "augmentation_used": self.augmentation if isinstance(self.augmentation, str) else None,
            "seed": self.random_state,
            "checkpoint_folder": self.checkpoint_folder,
            "versions": self.versions,
        })

    @classmethod
    def load(cls, path, device="auto") -> TSimCNEModel:
        """Read a model file written by :meth:`save` onto ``device`` (as ``TSimCNE``'s ``device``).

        Files of earlier versions of the format load too.  Raises
        ``FileNotFoundError``, or ``ValueError`` naming the file for a
        foreign, damaged, incomplete or too new one.
        """
        payload = read_model_file(path)
        device = resolve_device(device)
        try:
            # Files from before the recipes were trained with the paper's.
            params = {"recipe": "paper", **payload["params"]}
            unknown = sorted(set(params) - set(SAVED_PARAMS))
            if unknown:
                raise ValueError(f"unknown parameters {unknown}")
            height, width, channels = payload["image_shape"]
            network = TSimCNENetwork(payload["backbone"], channels, payload["output_dim"],
                                     params["hidden_dim"])
            network.load_state_dict(payload["state_dict"])
            return cls(
                network=network.to(device).eval(),
                device=device,
                backbone=payload["backbone"],
                image_shape=(height, width, channels),
                intensity_range=payload["intensity_range"].numpy(),
                embedding=payload["embedding"].numpy(),
                loss_history=[h.numpy() for h in payload["loss_history"]],
                stopped_early=payload["stopped_early"],
                # Files from before "auto" was resolved store the parameters' values.
                epochs=check_epochs(payload.get("epochs_used", params["epochs"])),
                batch_size=payload.get("batch_size_used", params["batch_size"]),
                augmentation=payload.get("augmentation_used", params["augmentation"]),
                random_state=payload.get("seed", params["random_state"]),
                checkpoint_folder=payload.get("checkpoint_folder"),
                params=params,
                versions=payload["versions"],
            )
        except (KeyError, TypeError, AttributeError, ValueError, RuntimeError) as error:
            missing = f"no {error}" if isinstance(error, KeyError) else str(error)
            raise ValueError(f"{path} is an incomplete or inconsistent model file "
                             f"({missing}); write it again with TSimCNE.save or "
                             "`napari-tsimcne fit`.") from None
