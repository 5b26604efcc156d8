"""Time to quality of the reference, tsimcne 0.3.12, with its defaults scaled to a budget.

The row "the reference implementation with its defaults scaled to the same
budget" of the Fashion-MNIST comparison (see ``quality.py`` for ours):
the reference's ``TSimCNE`` trains on the first ``--n-train`` training images,
places them and the first ``--n-test`` test images with its ``transform``, and
the kNN (k=15) accuracy of the test points among the training points is
reported.

    python benchmarks/reference_quality.py --budget-minutes 15

Everything is the reference's default (SimCLR ResNet-18, batch 512, lr
0.03 * b / 256 with its per-stage rates and cosine schedule, its augmentations,
its 8 DataLoader workers, its Lightning trainers) except the epochs of its three
stages, which are scaled down from 1000/50/450 to fit the budget:

* Calibration: the reference's own ``fit``, one stage of one epoch, on the
  first ``CALIBRATION_STEPS`` batches of the training images; its wall time
  times ``n_train / (CALIBRATION_STEPS * batch_size)`` predicts an epoch.
  It is conservative: the costs paid once per epoch (worker start, pipeline
  fill, checkpoint) and once per stage (Lightning's set-up) are charged to
  every calibration-sized share of the epoch.
* Plan: the largest schedule in the default proportions, rounded, each stage
  at least 1 epoch, whose predicted time fits the budget, every epoch charged
  the full price.  The readout stage is cheaper: ``mutate_model(change=
  "lastlin", freeze=True)`` freezes the whole network and swaps in a new last
  linear layer, so its backward pass stops at that layer (about the cost of a
  forward pass, a third of a full step), and training may end that much
  before the budget.  If even 1/1/1 does not fit, 1/1/1 runs over it.

Defaults kept that matter at so few epochs: the warm-up is 10 epochs in stages
one and three whatever their length, so a stage of fewer than 10 epochs never
leaves it and its first epoch runs at lr 0; the JSON lists each epoch's rate.

Data: the reference takes a Dataset of ``(PIL image, label)`` pairs, infers
the image size from it and has a 3-channel stem, so the grey images are
repeated into R, G and B (``reference.RandomImages`` wraps the array; fit
ignores the labels).  ``train_s`` is the wall time of ``fit`` as a user runs
it: Lightning's set-up per stage, the workers' start every epoch, its
per-epoch checkpoint and progress bar included.  Calibration and placement are
timed outside the budget.  Lightning's logs and checkpoints, which the
reference writes to the working directory, go to a temporary one.  The peak RSS
is the main process's; the workers are forked anew every epoch.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time

import numpy as np
import torch
from _common import peak_rss_mib, write_json
from reference import DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, DEFAULT_WORKERS, RandomImages
from tsimcne import TSimCNE

from napari_tsimcne.datasets import load_fashion_mnist
from napari_tsimcne.metrics import knn_accuracy

#: Batches of the one-epoch fit timed to predict an epoch.
CALIBRATION_STEPS = 2


def rgb_dataset(images: np.ndarray) -> RandomImages:
    """``(PIL RGB image, 0)`` pairs of grey uint8 images ``(N, H, W)``, grey repeated 3 times."""
    return RandomImages(np.repeat(images[..., None], 3, axis=-1))


def seconds_per_epoch(images: np.ndarray, batch_size: int, num_workers: int) -> dict:
    """Predicted seconds of one full-price epoch over ``images``, from a one-epoch calibration fit.

    The calibration is the reference's own ``fit`` of one stage of one epoch
    on the first ``CALIBRATION_STEPS`` batches, so Lightning's set-up, the
    workers' start, the checkpoint and the progress bar are in it as they are
    in every epoch of the real run.  Scaled to all the images, those
    once-per-epoch costs are charged once per calibration-sized share, which
    errs on the long side.
    """
    n_images = min(len(images), CALIBRATION_STEPS * batch_size)
    start = time.perf_counter()
    # Its first epoch runs at lr 0 (warm-up), which leaves the arithmetic of a step unchanged.
    TSimCNE(total_epochs=1, batch_size=batch_size, num_workers=num_workers).fit(
        rgb_dataset(images[:n_images]))
    calibration_s = time.perf_counter() - start
    return {"epoch_s": calibration_s * len(images) / n_images, "calibration_s": calibration_s,
            "images": n_images}


def plan_epochs(budget_s: float, epoch_s: float, proportions=DEFAULT_EPOCHS) -> list[int]:
    """The most epochs, in ``proportions`` and at least 1 per stage, that fit ``budget_s``."""
    affordable = int(budget_s // epoch_s)
    # Each stage's rounded share grows with the total, so the first total
    # from the top whose schedule fits is the largest that does.
    for total in range(affordable, 0, -1):
        epochs = [max(1, round(total * p / sum(proportions))) for p in proportions]
        if sum(epochs) <= affordable:
            return epochs
    return [1] * len(proportions)


def learning_rates(reference: TSimCNE) -> list[list[float]]:
    """The learning rate of every epoch of every stage, from the stages' own schedulers."""
    return [stage.configure_optimizers()["lr_scheduler"]["scheduler"]
            .lr_schedule[: stage.n_epochs].tolist() for stage in reference.models]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-minutes", type=float, default=15.0)
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help="the reference's default; smaller only for smoke tests")
    parser.add_argument("--num-workers", type=int, default=DEFAULT_WORKERS,
                        help="DataLoader workers (default: the reference's own)")
    parser.add_argument("--seed", type=int, default=0, help="torch seed of the initial weights")
    parser.add_argument("--name", default="reference_quality")
    args = parser.parse_args()

    x_train, y_train = (a[: args.n_train] for a in load_fashion_mnist("train"))
    x_test, y_test = (a[: args.n_test] for a in load_fashion_mnist("test"))
    train, test = rgb_dataset(x_train), rgb_dataset(x_test)

    budget_s = 60 * args.budget_minutes
    with tempfile.TemporaryDirectory(prefix="tsimcne-reference-") as root, \
            contextlib.chdir(root):
        timing = seconds_per_epoch(x_train, args.batch_size, args.num_workers)
        epochs = plan_epochs(budget_s, timing["epoch_s"])
        print(f"{timing['epoch_s']:.1f} s per epoch predicted -> epochs {epochs}", flush=True)
        torch.manual_seed(args.seed)
        reference = TSimCNE(total_epochs=epochs, batch_size=args.batch_size,
                            num_workers=args.num_workers)
        start = time.perf_counter()
        reference.fit(train)
        train_s = time.perf_counter() - start
        start = time.perf_counter()
        train_embedding, test_embedding = reference.transform(train), reference.transform(test)
        transform_s = time.perf_counter() - start
    accuracy = knn_accuracy(train_embedding, y_train, test_embedding, y_test)

    print(f"reference, defaults scaled: kNN {accuracy:.3f}, epochs {epochs}, "
          f"train {train_s:.0f} s of a {budget_s:.0f} s budget "
          f"({timing['epoch_s']:.1f} s/epoch predicted), peak RSS {peak_rss_mib():.0f} MiB",
          flush=True)
    write_json(args.name, {
        "args": vars(args),
        "knn_accuracy": accuracy, "epochs": epochs, "default_epochs": list(DEFAULT_EPOCHS),
        "budget_s": budget_s, "seconds_per_epoch": timing["epoch_s"],
        "predicted_train_s": timing["epoch_s"] * sum(epochs), "calibration": timing,
        "train_s": train_s, "transform_s": transform_s,
        "warmup_epochs": reference.warmup_schedules,
        "learning_rates": learning_rates(reference), "peak_rss_mib": peak_rss_mib(),
    })


if __name__ == "__main__":
    main()
