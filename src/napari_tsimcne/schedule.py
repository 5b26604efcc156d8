"""The staged training plan of t-SimCNE and its learning-rate schedule.

The paper trains in three stages (Sec. 3.4):

1. *pre-training*: the whole network with a 128-D readout, 1000 epochs,
   10 warm-up epochs then cosine annealing to 0;
2. *readout*: a fresh 2-D readout replaces the 128-D one and only it is
   trained, 50 epochs at the base learning rate, no warm-up, no annealing;
3. *fine-tuning*: the whole network at 1/1000 of the base learning rate,
   10 warm-up epochs then cosine annealing to 0, 450 epochs.

One stage (``epochs=(n,)``) trains the 2-D network directly, as the paper's
ablations do.

That is ``recipe="paper"``.  The default ``recipe="neighbors"`` keeps the
three stages, changes how the two 2-D stages learn and adds a fourth, for
maps that keep more of what the features know on a short budget
(``benchmarks/RESULTS.md``):

2. *readout* trains the whole projection head (hidden layer and a fresh 2-D
   readout) with Adam on cached backbone features of a few augmentations of
   every image (:mod:`napari_tsimcne.feature_cache`); an epoch is a pass of
   the anchors over the cache, seconds on a CPU;
3. *fine-tuning* runs at 1/100 of the base learning rate;
4. *final readout*: the readout stage again, on a cache of the fine-tuned
   features, training the fine-tuned head on (no fresh readout), as many
   epochs as the readout stage by default (none without fine-tuning).
   Fine-tuning moves the features under a head that was laid out for the
   earlier ones; this lays them out again, in seconds (on Fashion-MNIST,
   held-out kNN accuracy +0.009 on average over twelve runs, one of them
   lower, and the training map's +0.007 over eight, ``benchmarks/RESULTS.md``);

and in all three, a share :data:`NEIGHBOR_SHARE` of the positive pairs are an
image and one of its :data:`NEIGHBORS` nearest neighbours in the features
``H`` (:mod:`napari_tsimcne.neighbors`) instead of two augmentations of one image.
Its pre-training also keeps a moving average of the weights, which the
network takes at the end of the stage (:data:`WEIGHT_AVERAGE_SHARE`).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace

__all__ = ["RECIPES", "Stage", "batch_size_for", "check_epochs", "check_recipe",
           "default_learning_rate", "learning_rate_factor", "make_stages", "stage_epochs",
           "stage_learning_rates"]

PAPER_EPOCHS = (1000, 50, 450)
STAGE_NAMES = ("pre-training", "readout", "fine-tuning", "final readout")
RECIPES = ("neighbors", "paper")

#: Share of positive pairs that are nearest neighbours in ``recipe="neighbors"``.
NEIGHBOR_SHARE = 0.8
#: Neighbours per image in the graph of the features ``H``.
NEIGHBORS = 15
#: Adam's learning rate for the head on cached features (the readout stage).
HEAD_LR = 1e-3
#: Fine-tuning's rate is the base rate divided by this, per recipe: the
#: paper's 1/1000, and 1/100 where measured better for short schedules.
FINETUNE_LR_DIVISOR = {"paper": 1000, "neighbors": 100}
#: Pre-training in ``recipe="neighbors"`` ends with an exponential moving
#: average of the weights and BatchNorm statistics over about this share of
#: its steps (decay ``1 - 1 / (share * steps)``): on Fashion-MNIST in 15
#: minutes (about 13,000 steps, decay 0.999) it lifted the held-out map by
#: 0.028 and 0.016 on two seeds against runs without it the same day, with
#: openTSNE of H level (``benchmarks/RESULTS.md``, 2026-12-03).
WEIGHT_AVERAGE_SHARE = 0.075


@dataclass(frozen=True)
class Stage:
    """One stage of training.

    Attributes
    ----------
    name
        Human-readable name shown in progress bars.
    epochs
        Passes over the data.
    out_dim
        Output dimension of the network during this stage.
    lr
        Peak learning rate.
    warmup_epochs
        Linear warm-up from 0 (may be fractional: it is applied per step).
    anneal
        Cosine annealing to 0 after the warm-up, or a constant rate.
    readout_only
        Train only the readout, everything else frozen.
    new_readout
        Replace the readout by a fresh one of ``out_dim`` before the stage.
    loss
        ``"euclidean"`` (Cauchy) or ``"cosine"``.
    cached_features
        Train the projection head alone on cached backbone features, with Adam
        at ``lr`` annealed to 0 (see :mod:`napari_tsimcne.feature_cache`).
    neighbor_share
        Share of positive pairs made of an image and a nearest neighbour in
        the features ``H`` rather than two augmentations of one image.
    weight_average
        Share of the stage's steps that an exponential moving average of the
        weights spans; the network takes the average at the end of the stage
        (0: none).
    """

    name: str
    epochs: int
    out_dim: int
    lr: float
    warmup_epochs: float
    anneal: bool
    readout_only: bool = False
    new_readout: bool = False
    loss: str = "euclidean"
    cached_features: bool = False
    neighbor_share: float = 0.0
    weight_average: float = 0.0

    @property
    def head_only(self) -> bool:
        """Whether the stage trains the projection head alone (a readout stage)."""
        return self.readout_only or self.cached_features


#: Pre-training shorter than this many epochs (the paper's) counts as a short
#: schedule.  It was 100: 15-minute runs planned at 102 to 134 epochs then fell
#: to the paper's rule (0.0075 at batch 64) and mapped Fashion-MNIST at
#: 0.665-0.721, where 84 epochs at 0.12 reached 0.745 on the same machine and
#: 187 epochs at 0.12 learned features as good (``benchmarks/RESULTS.md``).
SHORT_SCHEDULE_EPOCHS = PAPER_EPOCHS[0]
#: Smallest automatic learning rate of a short schedule.  Schedules of tens of
#: epochs learned better with it than with the paper's rule at batch sizes 32 to
#: 256 on Fashion-MNIST and digits (``benchmarks/RESULTS.md``).
SHORT_SCHEDULE_LR = 0.12


def default_learning_rate(batch_size: int, pretrain_epochs: int = PAPER_EPOCHS[0]) -> float:
    """The learning rate of ``lr="auto"``.

    The paper's linear scaling rule ``0.03 * batch_size / 256``, tuned for its
    1000 epochs of pre-training; for a short schedule (pre-training under
    :data:`SHORT_SCHEDULE_EPOCHS` epochs) at least :data:`SHORT_SCHEDULE_LR`.
    """
    paper_rule = 0.03 * batch_size / 256
    if pretrain_epochs < SHORT_SCHEDULE_EPOCHS:
        return max(paper_rule, SHORT_SCHEDULE_LR)
    return paper_rule


def batch_size_for(requested: int, n_images: int) -> int:
    """``requested``, or the largest power of two up to ``n_images`` if there are fewer images."""
    if requested <= n_images:
        return int(requested)
    return 1 << (max(int(n_images), 2).bit_length() - 1)


def _warmup(epochs: int, warmup_epochs: float) -> float:
    # Short CPU runs would spend most of a stage warming up; cap at 10%.
    return min(warmup_epochs, epochs / 10)


def make_stages(
    epochs,
    *,
    lr,
    out_dim: int = 2,
    pretrain_dim: int = 128,
    pretrain_loss: str = "euclidean",
    warmup_epochs: float = 10,
    recipe: str = "neighbors",
) -> list[Stage]:
    """Build the stages for ``epochs``, epoch counts as :func:`stage_epochs` reads them.

    ``lr`` is the peak learning rate, a float or a tuple with one rate per
    stage of pre-training, readout and fine-tuning (the final readout uses
    the readout's).  From a float, fine-tuning uses ``lr / 1000`` with
    ``recipe="paper"`` and ``lr / 100`` with ``recipe="neighbors"``, whose
    readout stages use Adam at :data:`HEAD_LR`.  Stages with 0 epochs are
    dropped, except that pre-training is needed before the readout can be swapped.
    """
    epochs = stage_epochs(epochs, recipe)
    lrs = stage_learning_rates(lr, len(epochs) == 1, recipe)
    if len(epochs) == 1:
        (n,) = epochs
        return [Stage("training", n, out_dim, lrs[0], _warmup(n, warmup_epochs), anneal=True)]
    pretrain, readout, finetune = epochs[:3]
    neighbors = recipe == "neighbors"
    share = NEIGHBOR_SHARE if neighbors else 0.0
    stages = [
        Stage(STAGE_NAMES[0], pretrain, pretrain_dim, lrs[0], _warmup(pretrain, warmup_epochs),
              anneal=True, loss=pretrain_loss,
              weight_average=WEIGHT_AVERAGE_SHARE if neighbors else 0.0),
        Stage(STAGE_NAMES[1], readout, out_dim, lrs[1], 0, anneal=neighbors,
              readout_only=not neighbors, new_readout=True, cached_features=neighbors,
              neighbor_share=share),
        Stage(STAGE_NAMES[2], finetune, out_dim, lrs[2], _warmup(finetune, warmup_epochs),
              anneal=True, neighbor_share=share),
    ]
    if neighbors:
        stages.append(Stage(STAGE_NAMES[3], epochs[3], out_dim, lrs[1], 0, anneal=True,
                            cached_features=True, neighbor_share=share))
    if readout == 0:  # the fresh readout is then created at the start of fine-tuning
        stages[2] = replace(stages[2], new_readout=True)
    return [stage for stage in stages if stage.epochs > 0]


def stage_epochs(epochs, recipe: str = "neighbors") -> tuple[int, ...]:
    """Epochs of every stage of ``recipe``'s plan for ``epochs``; ``ValueError`` if none fits.

    ``epochs`` is ``(n,)`` (the 2-D network trained directly), ``(pre-training,
    readout, fine-tuning)``, or with ``recipe="neighbors"`` also ``(...,
    final readout)``.  Three counts under ``recipe="neighbors"`` give the final
    readout the readout's count, or none without fine-tuning (nothing moved
    the features since the readout stage).
    """
    epochs = check_epochs(epochs)
    check_recipe(recipe)
    if recipe == "neighbors" and len(epochs) == 3:
        return (*epochs, epochs[1] if epochs[2] else 0)
    if recipe != "neighbors" and len(epochs) == 4:
        raise ValueError(
            f"epochs={epochs!r} has a fourth count, for the final readout stage, which only "
            "recipe='neighbors' has. Pass three counts (pre-training, readout, fine-tuning).")
    return epochs


def check_recipe(recipe) -> str:
    """``recipe`` if it names one of :data:`RECIPES`; ``ValueError`` otherwise."""
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {RECIPES}, got {recipe!r}.")
    return recipe


def check_epochs(epochs) -> tuple[int, ...]:
    """``epochs`` as a tuple of 1, 3 or 4 whole numbers; ``ValueError`` saying what fits.

    Which stages the counts are for depends on the recipe: :func:`stage_epochs`.
    """
    if isinstance(epochs, numbers.Integral):
        epochs = (epochs,)
    try:
        valid = (not isinstance(epochs, str) and len(epochs) in (1, 3, 4) and all(
            isinstance(e, numbers.Integral) and not isinstance(e, bool) and e >= 0
            for e in epochs))
    except TypeError:  # not a sequence
        valid = False
    if valid:
        epochs = tuple(int(e) for e in epochs)
    if not valid or epochs[0] == 0 or len(epochs) > 1 and sum(epochs[1:3]) == 0:
        raise ValueError(
            f"epochs={epochs!r} is not a training plan. Pass one epoch count per stage: "
            "(pre-training, readout, fine-tuning) such as the paper's (1000, 50, 450), "
            "optionally with a fourth for the final readout, or a single count (n,) to "
            "train the 2-D map directly. The first count and the sum of the readout's and "
            "fine-tuning's must be positive."
        )
    return epochs


def stage_learning_rates(lr, single_stage: bool, recipe: str = "neighbors") -> tuple[float, ...]:
    """Peak learning rates from ``lr``: of the one stage of a ``single_stage`` plan,
    else of pre-training, readout and fine-tuning (a final readout takes the readout's).

    ``lr`` is one number (the later stages' rates follow from it as
    :func:`make_stages` says) or one number per stage; ``ValueError`` naming
    ``lr`` unless every rate is a positive finite number.
    """
    if _is_number(lr):
        readout_lr = HEAD_LR if recipe == "neighbors" else lr
        rates = (lr,) if single_stage else (lr, readout_lr, lr / FINETUNE_LR_DIVISOR[recipe])
    else:
        try:
            rates = tuple(lr) if all(_is_number(r) for r in lr) else ()
        except TypeError:  # not a sequence
            rates = ()
        n_rates = 1 if single_stage else 3
        if len(rates) != n_rates:
            raise ValueError(
                f"lr={lr!r} does not fit {n_rates} stage(s): pass 'auto', one number, or one "
                "learning rate per stage."
            )
    if not all(math.isfinite(r) and r > 0 for r in rates):
        raise ValueError(f"Learning rates must be positive and finite, got lr={lr!r}.")
    return tuple(float(r) for r in rates)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def learning_rate_factor(step: int, total_steps: int, warmup_steps: int, anneal: bool) -> float:
    """Factor of the peak learning rate at optimiser ``step`` (0-based) of a stage.

    Linear warm-up from ``1/warmup_steps`` to 1, then cosine annealing towards 0
    over the remaining steps (or constant if ``anneal`` is false).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if not anneal:
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * progress))
