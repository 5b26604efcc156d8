"""``TSimCNE``: the scikit-learn-style transformer around network, data and trainer."""

from __future__ import annotations

import numbers
import os
import sys
import time
from functools import partial

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from . import data, distributed
from .augmentation import check_augmentation, make_augmentation
from .axes import check_axes
from .backbones import parse_backbone_name
from .budget import measure_costs, plan_epochs, revise_plan
from .callbacks import Callback
from .checkpoint import (
    CheckpointFolder, check_same_run, checkpoint_size, fingerprint, read_resume_state,
    run_signature,
)
from .clock import TimeLeft, format_duration
from .data import (
    DeviceImages, StreamedImages, as_image_stack, fit_intensity_range, should_stream,
    to_uint8_tensor,
)
from .defaults import CHECKPOINT_EVERY, CROP_SCALE, PAPER_CROP_SCALE
from .devices import defaults_for_device, resolve_backbone, resolve_device
from .heads import HIDDEN_DIM
from .loss import LOSS_METRICS
from .memory import check_training_memory
from .model import TSimCNEModel, current_versions, storable_params
from .network import TSimCNENetwork
from .schedule import (
    PAPER_EPOCHS, batch_size_for, check_recipe, default_learning_rate, make_stages, stage_epochs,
    stage_learning_rates,
)
from .trainer import Accelerations, TrainingStopped, embed, inference_batch_size, train

__all__ = ["TSimCNE", "TrainingStopped"]


class _ModelAttribute:
    """A fitted attribute of :class:`TSimCNE` read from its ``model_``: ``embedding_``
    is ``model_.embedding``.  Before ``fit`` it is missing (``AttributeError``,
    so that ``hasattr`` says False); it cannot be set."""

    def __set_name__(self, owner, name: str) -> None:
        self.name, self.model_attribute = name, name.removesuffix("_")

    def __get__(self, estimator, owner=None):
        if estimator is None:
            return self
        try:
            model = vars(estimator)["model_"]
        except KeyError:
            raise AttributeError(f"{type(estimator).__name__!r} object has no attribute "
                                 f"{self.name!r}: it is not fitted yet") from None
        return getattr(model, self.model_attribute)

    def __set__(self, estimator, value) -> None:
        raise AttributeError(f"{self.name} is read-only: it is model_.{self.model_attribute}.")


class TSimCNE(TransformerMixin, BaseEstimator):
    """Parametric 2-D map of images by t-SimCNE (Böhm, Berens & Kobak, ICLR 2023).

    A ResNet is trained so that two random augmentations of one image land
    close together in the output space, under a Cauchy-kernel InfoNCE loss,
    first with a 128-D output, then with a fresh 2-D readout (trained alone),
    then fine-tuned as a whole.  The trained network places new images on the
    same map with :meth:`transform`.

    Parameters
    ----------
    epochs : tuple of int, default (1000, 50, 450)
        Epochs of the stages (pre-training, readout, fine-tuning), as in the
        paper; ``(n,)`` trains the 2-D network directly for ``n`` epochs.
        With ``recipe="neighbors"`` a fourth count sets the final readout's
        epochs, which are otherwise the readout's (0 leaves the stage out).
        On a CPU try a few dozen, e.g. ``(40, 5, 15)``.
    batch_size : int or "auto", default "auto"
        Images per step ``b``; the loss sees ``2b`` views.  At most the number
        of training images.  ``"auto"``: about an eighth of the images, from
        32 to 64 on a CPU and to 1024 (the paper's) on a GPU
        (:func:`napari_tsimcne.defaults.default_batch_size`).
    out_dim : int, default 2
        Dimension of the map.
    backbone : str, default "auto"
        ``"resnet10"``, ``"resnet18"``, ``"resnet34"``, optionally narrowed with
        a width suffix such as ``"resnet10-w32"`` (see
        :mod:`napari_tsimcne.backbones`).  ``"auto"`` is the paper's ResNet-18
        on a GPU and the faster :data:`napari_tsimcne.devices.CPU_BACKBONE` on a CPU.
    augmentation : {"auto", "natural", "microscopy"} or callable, default "auto"
        Augmentation preset (see :mod:`napari_tsimcne.augmentation`) or a
        callable mapping a float batch ``(N, C, H, W)`` in ``[0, 1]`` to one of
        the same shape.  ``"auto"`` is ``"natural"`` for colour photographs
        (3 or 4 channels of uint8) and ``"microscopy"`` for everything else.
    lr : float, tuple of float or "auto", default "auto"
        Peak learning rate of pre-training.  With ``recipe="paper"`` the
        readout stage uses it too and fine-tuning ``lr / 1000``; with
        ``recipe="neighbors"`` the readout stage uses Adam at 1e-3 and
        fine-tuning ``lr / 100``.  A tuple gives one rate per stage of
        pre-training, readout and fine-tuning; the final readout uses the readout's.  ``"auto"`` is the
        paper's ``0.03 * batch_size / 256``, tuned for its 1000 epochs of
        pre-training, and at least 0.12 when pre-training is shorter than that,
        which measured better for short CPU schedules (see
        :func:`napari_tsimcne.schedule.default_learning_rate`).
    image_size : int, (int, int), None or "auto", default "auto"
        Size ``(H, W)`` the images are resized to.  ``None`` keeps the size of
        an array stack and uses the median size for a list of images of
        different sizes; ``"auto"`` does the same except that on a CPU square
        images larger than 32 px are shrunk to 32 px (the paper's size, and a
        quarter of the work of 64 px), and on every device images are shrunk,
        aspect kept, to at most 256 px on their longer side and to what
        training fits in the device's free memory
        (:func:`napari_tsimcne.defaults.default_image_size`).  Before training
        the memory a step needs is estimated (:mod:`napari_tsimcne.memory`); a
        size that does not fit is refused with one that does.
    device : str, default "auto"
        ``"auto"`` (cuda, then mps, then cpu), ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``.
    random_state : int, RandomState or None, default None
        Seed of weights, batches and augmentations.  On a CPU the same seed
        gives the same embedding.  The seed a run used is ``random_state_``
        (drawn at random for ``None``) and is saved with the model.
    verbose : bool, default False
        Print the settings and the estimated duration at the start, and show a
        progress bar with the loss and the estimated time left.
    callbacks : list of callables or None, default None
        Each is called after every epoch as ``callback(stage, epoch, loss)``
        (stage and epoch counted from 0); a true return value stops training.
        Stopped in the 2-D stages, the model keeps what it learned so far
        (``stopped_early_``); stopped before the 2-D map exists, ``fit``
        raises :class:`TrainingStopped` and the estimator is left as it was.
    pretrain_dim : int, default 128
        Output dimension of pre-training.
    pretrain_loss : {"euclidean", "cosine"}, default "euclidean"
        Loss of pre-training: the Cauchy loss (the paper's best) or SimCLR's.
    hidden_dim : int, default 2048
        Hidden width of the projection head.  The paper uses 1024; why the
        default differs: :data:`napari_tsimcne.heads.HIDDEN_DIM`.
    weight_decay : float, default 5e-4
    momentum : float, default 0.9
        SGD's weight decay and momentum.
    warmup_epochs : float, default 10
        Linear warm-up of pre-training and fine-tuning, at most 10% of a stage.
    crop_scale : (float, float), default (0.4, 1.0)
        Range of the random crops' area, as a share of the image's, for the
        augmentation presets.  The paper uses (0.2, 1.0) for its 1000 epochs;
        why the default differs: :data:`napari_tsimcne.defaults.CROP_SCALE`.
    precision : {"auto", "bf16", "fp32"}, default "auto"
        Arithmetic of the backbone during training: ``"auto"`` is bfloat16
        autocast where the hardware computes in bf16 natively (CUDA GPUs with
        bf16; CPUs with AVX-512 BF16 or AMX, where it measured about twice as
        fast) and float32 elsewhere.  The projection head, the loss and the map
        are always float32.
    compile : bool, default False
        ``torch.compile`` the network: minutes of compilation before the first
        step, then faster steps on GPUs (see ``benchmarks/RESULTS.md``).
    stream : bool or "auto", default "auto"
        Read the training images batch by batch from ``X`` (a memory-mapped
        array, a dask/zarr/h5py array) instead of copying them all to the
        device as uint8 first.  ``"auto"`` streams when that copy would take
        more than a quarter of the free memory of the device.

    checkpoint_dir : str, Path or None, default None
        Folder for checkpoints of the running training (created if missing):
        written every ``checkpoint_every`` epochs and at the end of every stage,
        the newest two kept.  ``fit(X, resume=True)`` continues from the newest
        good one after a crash, a ``kill`` or a stop.
    checkpoint_every : int, default 10
        Epochs between checkpoints within a stage.
    recipe : {"neighbors", "paper"}, default "neighbors"
        How the 2-D stages learn.  ``"paper"`` is the paper's protocol exactly
        (with ``crop_scale=(0.2, 1.0)``, the paper's crops): the readout stage
        trains the 2-D readout through the frozen backbone, fine-tuning runs at
        ``lr / 1000``, and the positive pairs are always two augmentations of
        one image.  ``"neighbors"`` trains the head on cached backbone
        features in the readout stage (an epoch there costs seconds) and
        takes 80% of the 2-D stages' positive pairs from the 15 nearest
        neighbours of each image in the features ``H``, which keeps more of
        what the features know in the map (``benchmarks/RESULTS.md``); after
        fine-tuning it trains the head once more on cached fine-tuned features
        (a fourth stage, the *final readout*); see :mod:`napari_tsimcne.schedule`.
    time_budget : float or None, default None
        Seconds that training may take.  ``fit`` then times real steps on this
        machine and plans the epochs of each stage to fill the budget (see
        :mod:`napari_tsimcne.budget`), instead of using ``epochs``; the plan is
        ``epochs_`` and is saved with the model.  Resuming keeps the plan of
        the interrupted run.
    axes : str, default "auto"
        Layout of an array ``X``, one letter per axis: ``Y`` and ``X`` for
        height and width, ``C`` for channels, ``N``, ``T`` or ``Z`` for axes
        along which the images lie (each index an image of its own), e.g.
        ``"NCYX"`` for channels first, ``"TZYX"`` for the planes of time
        points as images, ``"TCYX"`` for the same stack with its planes as
        channels (see :mod:`napari_tsimcne.axes`).  ``"auto"`` reads
        ``(N, H, W)`` and ``(N, H, W, C)`` with channels last and refuses
        other shapes, naming the layouts to choose from.  Saved with the
        model and used by :meth:`transform`.  Lists and datasets hold one
        image per item in their own layout and do not use it.

    Distributed training: launched with ``torchrun``, every process calls
    ``fit`` with the same data and parameters; ``batch_size`` is then the
    global batch, and only rank 0 writes files in :meth:`save`.  See
    :mod:`napari_tsimcne.distributed`.

    Attributes
    ----------
    model_ : TSimCNEModel
        The trained model (:class:`napari_tsimcne.model.TSimCNEModel`): its
        ``network`` on ``device_``, and :meth:`transform` and :meth:`save`,
        which this estimator's delegate to.  The other attributes below are
        the model's, read from it (``embedding_`` is ``model_.embedding``).
    embedding_ : ndarray of shape (n_images, out_dim)
        Map of the training images (network in eval mode, no augmentation).
    loss_history_ : list of ndarray
        Mean loss of every epoch, one array per stage that ran.
    image_shape_ : tuple (H, W, C)
        Size and channel count images are brought to.
    intensity_range_ : ndarray of shape (C, 2)
        Per-channel ``(low, high)`` mapped to ``[0, 1]``; see :mod:`napari_tsimcne.data`.
    backbone_ : str
        The backbone actually used.
    device_ : torch.device
    stopped_early_ : bool
        Whether a callback stopped training.
    epochs_ : tuple of int
        Epochs per stage of the training: ``epochs`` (with the final
        readout's count for ``recipe="neighbors"``), or the plan for ``time_budget``.
    batch_size_ : int
    augmentation_ : str or callable
        The batch size and augmentation the training used (``"auto"`` resolved).
    random_state_ : int
        The seed the training used: ``random_state=random_state_`` repeats it.
    checkpoint_folder_ : str or None
        Where the training wrote its checkpoints (``checkpoint_dir``).
    versions_ : dict
        Versions of napari-tsimcne, torch and Python that trained the model.
    """

    embedding_ = _ModelAttribute()
    loss_history_ = _ModelAttribute()
    image_shape_ = _ModelAttribute()
    intensity_range_ = _ModelAttribute()
    backbone_ = _ModelAttribute()
    device_ = _ModelAttribute()
    stopped_early_ = _ModelAttribute()
    epochs_ = _ModelAttribute()
    batch_size_ = _ModelAttribute()
    augmentation_ = _ModelAttribute()
    random_state_ = _ModelAttribute()
    checkpoint_folder_ = _ModelAttribute()
    versions_ = _ModelAttribute()

    def __init__(
        self,
        epochs=PAPER_EPOCHS,
        batch_size="auto",
        out_dim=2,
        backbone="auto",
        augmentation="auto",
        lr="auto",
        image_size="auto",
        device="auto",
        random_state=None,
        verbose=False,
        callbacks=None,
        pretrain_dim=128,
        pretrain_loss="euclidean",
        hidden_dim=HIDDEN_DIM,
        weight_decay=5e-4,
        momentum=0.9,
        warmup_epochs=10,
        crop_scale=CROP_SCALE,
        precision="auto",
        compile=False,
        stream="auto",
        checkpoint_dir=None,
        checkpoint_every=CHECKPOINT_EVERY,
        recipe="neighbors",
        time_budget=None,
        axes="auto",
    ):
        self.epochs = epochs
        self.batch_size = batch_size
        self.out_dim = out_dim
        self.backbone = backbone
        self.augmentation = augmentation
        self.lr = lr
        self.image_size = image_size
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.pretrain_dim = pretrain_dim
        self.pretrain_loss = pretrain_loss
        self.hidden_dim = hidden_dim
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.warmup_epochs = warmup_epochs
        self.crop_scale = crop_scale
        self.precision = precision
        self.compile = compile
        self.stream = stream
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.recipe = recipe
        self.time_budget = time_budget
        self.axes = axes

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None, *, resume=False, resume_from=None):
        """Train on images ``X`` (see :mod:`napari_tsimcne.data` for the accepted forms).

        ``y`` is ignored.  Returns ``self``.

        Parameters
        ----------
        resume : bool, default False
            Continue from the newest good checkpoint in ``checkpoint_dir``
            (train from the start, with a warning, if there is none).  The
            images and the parameters that shape the run must be those of the
            interrupted run; learning rate, momentum and weight decay may change.
            On a CPU the result equals that of an uninterrupted run.
        resume_from : path or None
            Continue from this checkpoint file instead.
        """
        self._fit(X, resume, resume_from)
        return self

    def fit_transform(self, X, y=None, *, resume=False, resume_from=None):
        """Train on ``X`` and return its embedding ``(n_images, out_dim)``, float32.

        ``resume`` and ``resume_from`` as in :meth:`fit`.
        """
        self._fit(X, resume, resume_from)
        return self.embedding_.copy()

    def _fit(self, X, resume=False, resume_from=None):
        start = time.perf_counter()
        self._check_parameters()
        # The device and what it can do, still before the images are read.
        device = resolve_device(self.device)
        backbone = resolve_backbone(self.backbone, device)
        accelerations = Accelerations.for_device(device, self.precision, bool(self.compile),
                                                 backbone)
        stack = as_image_stack(X, min_images=2, axes=self.axes)
        derived = defaults_for_device(device, backbone, accelerations, len(stack),
                                      *stack.common_size(), stack.n_channels, stack.dtype)
        batch_size = self._resolve_batch_size(len(stack), derived.batch_size)
        distributed.init_from_environment(device)
        image_size = self._resolve_image_size(stack, derived.image_size)
        check_training_memory(backbone, stack.n_channels, batch_size, image_size, device,
                              accelerations)
        augmentation = derived.augmentation if _is_auto(self.augmentation) else self.augmentation
        augment = make_augmentation(
            augmentation, stack.n_channels, image_size, tuple(self.crop_scale)
        )
        random_state = _seed_of(self.random_state)
        intensity_range = fit_intensity_range(stack)
        images = self._training_images(stack, intensity_range, image_size, device)
        if callable(augmentation):
            _try_custom_augmentation(augment, images)
        checkpoints = self._checkpoint_folder()
        resume_state = read_resume_state(checkpoints, resume, resume_from)
        measure = partial(measure_costs, backbone, images, augment, batch_size=batch_size,
                          hidden_dim=self.hidden_dim, accelerations=accelerations,
                          cached_readout=self.recipe == "neighbors")
        costs = None
        if self.time_budget is None:
            epochs = stage_epochs(self.epochs, self.recipe)
        elif resume_state is not None:  # the interrupted run's plan
            epochs = tuple(resume_state["metadata"]["epochs"])
        else:
            costs = measure()
            budget_left = _check_time_budget(self.time_budget) - (time.perf_counter() - start)
            epochs = distributed.same_on_all_processes(
                plan_epochs(budget_left, costs, self.recipe))
        lr = self.lr
        if _is_auto(lr):
            lr = default_learning_rate(batch_size, pretrain_epochs=epochs[0])
        stages_for = partial(
            make_stages, lr=lr, out_dim=self.out_dim, pretrain_dim=self.pretrain_dim,
            pretrain_loss=self.pretrain_loss, warmup_epochs=self.warmup_epochs,
            recipe=self.recipe,
        )
        stages = stages_for(epochs)
        if self.verbose:
            print(_settings_line(len(stack), stack.common_size(), image_size, stack.n_channels,
                                 device, backbone, batch_size, augmentation, random_state,
                                 stages, self.time_budget), file=sys.stderr)
        callbacks = list(self.callbacks or ())
        bars = _ProgressBars() if self.verbose else None
        listeners = [cb for cb in callbacks if hasattr(cb, "on_time_left")] + (
            [bars] if bars is not None else [])
        if listeners:
            # Timing a few steps costs seconds; only done when someone shows the estimate.
            costs = measure() if costs is None else costs
            start_at = (0, 0) if resume_state is None else (
                resume_state["stage"], resume_state["epoch"])
            callbacks.insert(0, TimeLeft(costs, listeners, start=start_at))
        if bars is not None:
            callbacks.append(bars)
        run = run_signature(self.get_params(), backbone=backbone,
                            image_shape=(*image_size, stack.n_channels), n_images=len(images),
                            epochs=epochs)
        if checkpoints is not None or resume_state is not None:
            # A pass over every image: only for a run that is checkpointed or resumed.
            run["images"] = fingerprint(images)
        if checkpoints is not None:
            checkpoints.metadata = run
        check_same_run(resume_state, run)
        replan = None
        if self.time_budget is not None and resume_state is None:
            replan = _BudgetKeeper(start + self.time_budget, costs, stages_for, run)

        seed = check_random_state(random_state).randint(np.iinfo(np.int32).max)
        fork_devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(seed)
            network = TSimCNENetwork(backbone, stack.n_channels, stages[0].out_dim,
                                     self.hidden_dim).to(device)
            _set_channel_statistics(network, images)
            if checkpoints is not None:
                checkpoints.check_writable(checkpoint_size(network))
            stopped = False
            try:
                history = train(
                    network, images, stages, augment, batch_size=batch_size,
                    momentum=self.momentum, weight_decay=self.weight_decay,
                    callbacks=callbacks, progress=bars.open if bars is not None else None,
                    accelerations=accelerations, checkpoints=checkpoints, resume=resume_state,
                    replan=replan,
                )
            except FloatingPointError as error:
                kept = checkpoints.paths() if checkpoints is not None else []
                if kept:
                    raise FloatingPointError(
                        f"{error} The last good checkpoint, {kept[0]}, is kept: continue "
                        "from it with fit(X, resume=True) and a lower lr."
                    ) from None
                raise
            except TrainingStopped as stop:
                if network.head.out_dim != self.out_dim:
                    raise TrainingStopped(
                        "Training was stopped before the 2-D map existed (during "
                        f"{stages[len(stop.history) - 1].name}); the estimator keeps its "
                        "previous state."
                    ) from None
                history, stopped = stop.history, True
        network.set_trainable(readout_only=False)
        network.eval()
        self.model_ = TSimCNEModel(
            network=network,
            device=device,
            backbone=backbone,
            image_shape=(*image_size, stack.n_channels),
            intensity_range=intensity_range,
            embedding=embed(network, images.chunks(inference_batch_size(batch_size)),
                            device=device),
            loss_history=history,
            stopped_early=stopped,
            epochs=tuple(run["epochs"]),
            batch_size=batch_size,
            augmentation=augmentation,
            random_state=random_state,
            checkpoint_folder=None if checkpoints is None else str(checkpoints.folder),
            params=storable_params(self.get_params()),
            versions=current_versions(),
        )

    def _check_parameters(self) -> None:
        """Check every parameter before any work; ``ValueError`` naming it and what to pass.

        Two checks follow at once in :meth:`_fit`, before the images are read:
        ``device`` where it is resolved, and ``precision`` (and ``compile``
        on a GPU) with what the device can do.  Only ``batch_size`` against
        the number of images waits for the images.
        """
        check_recipe(self.recipe)
        epochs = stage_epochs(self.epochs, self.recipe)
        if self.time_budget is not None:
            _check_time_budget(self.time_budget)
        if not _is_auto(self.lr):
            # A time budget plans every stage, whatever epochs says.
            stage_learning_rates(self.lr, len(epochs) == 1 and self.time_budget is None,
                                 self.recipe)
        if not _is_auto(self.batch_size):
            _check_batch_size(self.batch_size)
        if not _is_auto(self.backbone):
            parse_backbone_name(self.backbone)
        if not _is_auto(self.augmentation):
            check_augmentation(self.augmentation)
        for name in ("out_dim", "pretrain_dim", "hidden_dim", "checkpoint_every"):
            _check_whole_number(name, getattr(self, name), minimum=1)
        if not (isinstance(self.pretrain_loss, str) and self.pretrain_loss in LOSS_METRICS):
            raise ValueError(f"pretrain_loss must be 'euclidean' (the Cauchy loss of t-SimCNE) or "
                             f"'cosine' (SimCLR's), got {self.pretrain_loss!r}.")
        _check_number("warmup_epochs", self.warmup_epochs, "a number of epochs >= 0",
                      lambda v: v >= 0)
        _check_number("momentum", self.momentum, "a number in [0, 1)", lambda v: 0 <= v < 1)
        _check_number("weight_decay", self.weight_decay, "a number >= 0", lambda v: v >= 0)
        _check_crop_scale(self.crop_scale)
        _check_image_size(self.image_size)
        check_axes(self.axes)
        _check_random_state(self.random_state)
        for name in ("verbose", "compile"):
            if not _is_flag(getattr(self, name)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}.")
        if not (_is_auto(self.stream) or _is_flag(self.stream)):
            raise ValueError(f"stream must be True, False or 'auto', got {self.stream!r}.")
        if self.checkpoint_dir is not None and (
                not isinstance(self.checkpoint_dir, (str, os.PathLike))
                or not str(self.checkpoint_dir)):
            raise ValueError(f"checkpoint_dir must be the path of a folder, or None for no "
                             f"checkpoints, got {self.checkpoint_dir!r}.")
        if self.callbacks is not None and (
                isinstance(self.callbacks, (str, bytes)) or not hasattr(self.callbacks, "__iter__")
                or not all(callable(callback) for callback in self.callbacks)):
            raise ValueError(
                f"callbacks must be a list of callables (functions callback(stage, epoch, loss) "
                f"or napari_tsimcne.Callback objects), got {self.callbacks!r}.")

    def _checkpoint_folder(self):
        if self.checkpoint_dir is None:
            return None
        return CheckpointFolder(self.checkpoint_dir, self.checkpoint_every)

    def _training_images(self, stack, intensity_range, image_size, device):
        stream = should_stream(stack, image_size, device) if _is_auto(self.stream) else self.stream
        if stream:
            return StreamedImages(stack, intensity_range, image_size, device)
        return DeviceImages(to_uint8_tensor(stack, intensity_range, image_size).to(device))

    def _resolve_batch_size(self, n_images: int, auto: int) -> int:
        """The batch size to train with; ``batch_size`` was checked by :meth:`_check_parameters`."""
        batch_size = auto if _is_auto(self.batch_size) else self.batch_size
        if batch_size > n_images:
            raise ValueError(
                f"batch_size={batch_size} is larger than the {n_images} training images. "
                f"Pass batch_size={batch_size_for(batch_size, n_images)} or another value <= {n_images}."
            )
        return int(batch_size)

    def _resolve_image_size(self, stack, auto: int | None) -> tuple[int, int]:
        """``(H, W)`` to train at; ``image_size`` was checked by :meth:`_check_parameters`."""
        size = auto if _is_auto(self.image_size) else self.image_size
        if size is None:
            return stack.common_size()
        size = (size, size) if isinstance(size, numbers.Integral) else tuple(size)
        return tuple(int(s) for s in size)

    # ------------------------------------------------------------ transform
    def transform(self, X, features: bool = False, axes=None):
        """Place images ``X`` on the map (see ``model_.transform``).

        Parameters
        ----------
        X
            Images in any accepted form, with the channel count of the training
            images; they are resized to ``image_shape_`` if needed.
        features : bool, default False
            Return the backbone features ``H`` (e.g. 512-D for ResNet-18)
            instead of the embedding.  ``model_.transform(X,
            return_features=True)`` gives both from one forward pass.
        axes : str or None, default None
            Layout of an array ``X`` when it differs from the training
            images' (see the ``axes`` parameter); ``None`` uses ``axes``.

        Returns
        -------
        ndarray of shape (n_images, out_dim) or (n_images, feature_dim), float32.
        """
        check_is_fitted(self, "model_")
        axes = self.axes if axes is None else axes
        return self.model_.features(X, axes) if features else self.model_.transform(X, axes)

    # ----------------------------------------------------------- save/load
    def save(self, path):
        """Write the trained model to ``path`` (weights, parameters, intensity range).

        The file opens with ``torch.load(weights_only=True)``; see :meth:`load`.
        In distributed training only rank 0 writes; the other processes return
        the path without writing.
        """
        check_is_fitted(self, "model_")
        return self.model_.save(path)

    @classmethod
    def load(cls, path, device="auto") -> "TSimCNE":
        """Read a model written by :meth:`save` onto ``device``: an estimator with the
        saved parameters and the model as ``model_``.

        Raises ``FileNotFoundError`` or ``ValueError`` (naming the file) for a
        missing, foreign, damaged or too new file.
        :meth:`napari_tsimcne.model.TSimCNEModel.load` reads the model alone.
        """
        model = TSimCNEModel.load(path, device=device)
        estimator = cls(**model.params, device=device)
        estimator.model_ = model
        return estimator

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.requires_fit = True
        tags.non_deterministic = False
        tags.transformer_tags.preserves_dtype = ["float32"]  # transform always returns float32
        return tags


def _try_custom_augmentation(augment, images) -> None:
    """A user's augmentation must return a batch of its input's shape and dtype, all finite.

    Checked on a few training images before training: a wrong shape or NaNs
    would otherwise give a meaningless map, not an error.  The call draws from
    a forked random generator, so that the run itself is unchanged.
    """
    batch = next(iter(images.chunks(4))).float().div_(255)
    devices = [batch.device] if batch.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        try:
            out = augment(batch.clone())
        except Exception as error:
            raise ValueError(f"The augmentation failed on a float batch of shape "
                             f"{tuple(batch.shape)}: {error}") from error
    if not isinstance(out, torch.Tensor):
        problem = f"returned {type(out).__name__}, not a tensor"
    elif out.shape != batch.shape:
        problem = f"returned shape {tuple(out.shape)}"
    elif out.dtype != batch.dtype:
        problem = f"returned dtype {out.dtype}"
    elif not torch.isfinite(out).all():
        problem = "returned values that are not finite (NaN or infinity)"
    else:
        return
    raise ValueError(
        f"The augmentation {problem} for a batch of shape {tuple(batch.shape)} ({batch.dtype}, "
        "values in [0, 1]): it must return a tensor of the same shape and dtype with finite "
        "values.")


def _check_batch_size(batch_size) -> None:
    if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or (
            batch_size < 2):
        raise ValueError(f"batch_size must be an integer >= 2 or 'auto', got {batch_size!r}.")


def _check_random_state(random_state) -> None:
    if random_state is None or isinstance(random_state, np.random.RandomState):
        return
    if (isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool)
            and 0 <= random_state < 2**32):
        return
    raise ValueError(
        f"random_state must be None, a whole number from 0 to 2**32 - 1 (a seed) or a "
        f"numpy RandomState, got {random_state!r}.")


def _is_flag(value) -> bool:
    """Whether ``value`` is True or False (numpy's too, and 0 or 1)."""
    return isinstance(value, (bool, np.bool_)) or (
        isinstance(value, numbers.Integral) and value in (0, 1))


def _check_whole_number(name: str, value, minimum: int) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}.")


def _check_number(name: str, value, allowed: str, accept) -> None:
    """``ValueError`` unless ``value`` is a finite real number that ``accept`` accepts."""
    if (not isinstance(value, numbers.Real) or isinstance(value, bool)
            or not np.isfinite(value) or not accept(value)):
        raise ValueError(f"{name} must be {allowed}, got {value!r}.")


def _check_crop_scale(crop_scale) -> None:
    try:
        low, high = (float(v) for v in crop_scale)
        valid = 0 < low <= high <= 1
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(
            f"crop_scale must be (low, high) with 0 < low <= high <= 1, the range of the crops' "
            f"area as a share of the image's, got {crop_scale!r} "
            f"(the paper uses {PAPER_CROP_SCALE}).")


def _check_image_size(image_size) -> None:
    if image_size is None or _is_auto(image_size):
        return
    sides = (image_size, image_size) if isinstance(image_size, numbers.Integral) else image_size
    try:
        valid = len(sides) == 2 and all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 8 for s in sides)
    except TypeError:
        valid = False
    if not valid:
        raise ValueError(
            f"image_size must be 'auto', None, a whole number or (height, width) of whole "
            f"numbers >= 8, got {image_size!r}.")


def _check_time_budget(time_budget) -> float:
    if (not isinstance(time_budget, numbers.Real) or isinstance(time_budget, bool)
            or not np.isfinite(time_budget) or time_budget <= 0):
        raise ValueError(
            f"time_budget must be a positive number of seconds, got {time_budget!r} "
            "(e.g. time_budget=15 * 60 for 15 minutes)."
        )
    return float(time_budget)


def _set_channel_statistics(network: TSimCNENetwork, images) -> None:
    """Set the network's per-channel mean and std from the uint8 training images."""
    total = squares = 0
    count = 0
    for batch in images.chunks(data.CHUNK_SIZE):
        x = batch.double().div_(255)
        total = total + x.sum(dim=(0, 2, 3))
        squares = squares + x.square().sum(dim=(0, 2, 3))
        count += batch.shape[0] * batch.shape[2] * batch.shape[3]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt().clamp_min(1e-3)
    network.channel_mean.copy_(mean.float())
    network.channel_std.copy_(std.float())


class _ProgressBars(Callback):
    """The progress output of ``verbose``: the estimated duration first, then a bar per stage.

    Each bar shows the loss of the last epoch and the estimated time left of
    the whole training.
    """

    def __init__(self):
        self.bar = self.stage_name = None
        self.seconds_left = None

    def open(self, stage):
        """The trainer's progress factory: a tqdm bar for ``stage``."""
        from tqdm.auto import tqdm

        self.bar = tqdm(total=stage.epochs, desc=stage.name, unit="epoch")
        self.stage_name = stage.name
        return self.bar

    def on_train_begin(self, stages) -> None:
        """A revised plan: the open bar counts to its stage's new length."""
        if self.bar is None:
            return
        for stage in stages:
            if stage.name == self.stage_name and stage.epochs != self.bar.total:
                self.bar.total = stage.epochs
                self.bar.refresh()

    def on_time_left(self, seconds: float) -> None:
        if self.seconds_left is None:
            print(f"Estimated time: about {format_duration(seconds)}.", file=sys.stderr)
        self.seconds_left = seconds

    def __call__(self, stage: int, epoch: int, loss: float) -> bool:
        # Called after the clock (the first callback) has told the time left.
        if self.bar is not None:
            self.bar.set_postfix_str(
                f"loss={loss:.3f}, about {format_duration(self.seconds_left)} left in all")
        return False


def _settings_line(n_images, native_size, image_size, n_channels, device, backbone, batch_size,
                   augmentation, seed, stages, time_budget) -> str:
    """What a run will do, printed at its start: images, settings and plan in one line.

    ``native_size`` is the images' (common) size, which ``image_size`` may shrink.
    """
    plan = (f"epochs {', '.join(str(stage.epochs) for stage in stages)} "
            f"({', '.join(stage.name for stage in stages)})")
    if time_budget is not None:
        plan += f" planned for a time budget of {format_duration(time_budget)}"
    preset = augmentation if isinstance(augmentation, str) else "custom"
    size = f"{image_size[0]}×{image_size[1]} px"
    if tuple(native_size) != tuple(image_size):
        size = f"{native_size[0]}×{native_size[1]} px resized to {size}"
    return (f"Training on {n_images} images ({size}, "
            f"{n_channels} channel(s)) on {device}: {backbone}, batch size {batch_size}, "
            f"augmentation {preset}, seed {seed}; {plan}.")


class _BudgetKeeper:
    """``replan`` for :func:`~napari_tsimcne.trainer.train`: keeps a run within its time budget.

    Before every stage after the first, and after every epoch within a stage,
    it compares the time training took so far with its planned cost and fits
    what is still to come to the time left: shorter when the run is behind,
    longer when it is well ahead, at a stage boundary or early in a stage
    (:func:`~napari_tsimcne.budget.revise_plan`).
    The new plan goes into ``run["epochs"]``, the checkpoints' metadata, so
    that a resumed run keeps it.
    """

    def __init__(self, deadline: float, costs, stages_for, run: dict):
        self.deadline, self.costs, self.stages_for, self.run = deadline, costs, stages_for, run
        self.training_start = time.perf_counter()

    def __call__(self, next_stage: int, stages, epochs_done: int):
        now = time.perf_counter()
        revised = distributed.same_on_all_processes(revise_plan(
            stages, next_stage, now - self.training_start, self.deadline - now, self.costs,
            epochs_done))
        if list(revised) == [stage.epochs for stage in stages]:
            return stages
        self.run["epochs"] = list(revised)
        return self.stages_for(revised)


def _seed_of(random_state) -> int:
    """The int seed a run uses: ``random_state`` itself, or one drawn from it or from the OS.

    An int is kept, so that ``random_state=seed`` repeats a run whose seed was drawn.
    """
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    if random_state is None:
        return int(np.random.default_rng().integers(np.iinfo(np.int32).max))
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _is_auto(value) -> bool:
    return isinstance(value, str) and value == "auto"
