"""Time to quality: held-out kNN accuracy within a wall-clock budget or schedule.

Trains on the first ``--n-train`` training images of Fashion-MNIST (Debian's
``dataset-fashion-mnist``), places the first ``--n-test`` test images with
``transform`` and reports the kNN (k=15) accuracy of those test points among
the training points, as the paper measures it.  ``--dataset shapes`` uses the
generated shapes of :func:`napari_tsimcne.synthetic.make_shapes` instead
(class carried by form alone; pixel neighbours mislead), the first
``--n-train`` of ``--n-train + --n-test`` images for training.

With ``--budget-minutes`` the estimator plans the epochs of the stages
itself (``TSimCNE(time_budget=...)``, which times real steps on this
machine); otherwise ``--epochs`` is used as given.  ``--recipe paper`` runs
the paper's 2-D stages instead of the default ``neighbors`` recipe.  ``--baselines`` adds openTSNE
on raw pixels (fit on train, ``transform`` test) and t-SNE on our backbone
features H.

Benchmark 2, 15 minutes on the CPU:

    python benchmarks/quality.py --budget-minutes 15 --backbone resnet10-w16 --batch-size 64 --baselines --name quality_cpu_15min

The generated-dataset row, same budget:

    python benchmarks/quality.py --dataset shapes --budget-minutes 15 --backbone resnet10-w8 --batch-size 64 \
        --crop-scale 0.5 1 --augmentation microscopy --baselines --name quality_cpu_15min_shapes

Benchmark 3 on a GPU: all 60,000 training images, a reduced paper schedule:

    python benchmarks/quality.py --device cuda --n-train 60000 --n-test 10000 \
        --backbone resnet18 --batch-size 1024 --epochs 100 5 45 --name quality_gpu_fmnist

``--backbone`` and ``--batch-size`` default to ``"auto"``, the device's
choice as :class:`~napari_tsimcne.TSimCNE` makes it (the commands above name
them as they were run), and the JSON records what they resolved to.

It reports the seconds per epoch and training views per second as well,
over the whole run and, from the epochs' end times, the median epoch of
every stage; and at the end of every 2-D stage, the held-out kNN accuracy
of the map as it is then and the training images' map alone (a tenth of
them classified by the rest), so that what each stage added is seen within
one run, on the same features.  ``--data-dir`` reads Fashion-MNIST's four IDX files from
another folder.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np
import torch

from _common import RESULTS_DIR, peak_rss_mib, write_json
from napari_tsimcne import Callback, TSimCNE
from napari_tsimcne import estimator as estimator_module
from napari_tsimcne import loss as loss_module
from napari_tsimcne.datasets import load_fashion_mnist
from napari_tsimcne.defaults import CROP_SCALE
from napari_tsimcne.metrics import knn_accuracy, pixel_tsne_baseline
from napari_tsimcne.synthetic import make_shapes
from napari_tsimcne.trainer import embed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    estimator_defaults = TSimCNE()
    add_split_arguments(parser)
    parser.add_argument("--backbone", default="auto", help="default: the device's, as TSimCNE")
    parser.add_argument("--epochs", type=int, nargs="+", default=[40, 5, 15])
    parser.add_argument("--budget-minutes", type=float)
    parser.add_argument("--recipe", default="neighbors", choices=["neighbors", "paper"])
    # Read when parsing, so that a variant script can add a loss (loss_variants.py).
    parser.add_argument("--pretrain-loss", default=estimator_defaults.pretrain_loss,
                        choices=loss_module.LOSS_METRICS)
    parser.add_argument("--batch-size", type=batch_size_argument, default="auto",
                        help="default: the device's, as TSimCNE")
    parser.add_argument("--lr", nargs="+", default=["auto"],
                        help="'auto', one peak rate, or one rate per stage")
    parser.add_argument("--hidden-dim", type=int, default=estimator_defaults.hidden_dim,
                        help="default: TSimCNE's, %(default)s")
    parser.add_argument("--weight-decay", type=float, default=estimator_defaults.weight_decay,
                        help="default: TSimCNE's, %(default)s")
    parser.add_argument("--pretrain-dim", type=int, default=estimator_defaults.pretrain_dim,
                        help="default: TSimCNE's, %(default)s")
    parser.add_argument("--warmup-epochs", type=float,
                        default=estimator_defaults.warmup_epochs,
                        help="default: TSimCNE's, %(default)s")
    parser.add_argument("--augmentation", default="natural")
    parser.add_argument("--crop-scale", type=float, nargs=2, default=list(CROP_SCALE))
    parser.add_argument("--image-size", type=int, help="side to train at (default: 'auto')")
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baselines", action="store_true")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--name", default="quality")
    parser.add_argument("--data-dir", help="folder of Fashion-MNIST's IDX files "
                                           "(default: Debian's dataset-fashion-mnist)")
    parser.add_argument("--out", help="folder of the JSON file (default: benchmarks/results)")
    parser.add_argument("--save-model", help="also write the trained model to this file "
                        "(for benchmarks/layout_gap.py)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    x_train, y_train, x_test, y_test = load_split(args.dataset, args.n_train, args.n_test,
                                                  args.data_dir)
    clock, stage_maps = EpochClock(), StageMaps(y_train, x_test, y_test)
    # The held-out images are placed as they are: not for another training size.
    callbacks = [clock] if args.image_size else [clock, stage_maps]
    lr = "auto" if args.lr == ["auto"] else tuple(float(r) for r in args.lr)
    lr = lr[0] if isinstance(lr, tuple) and len(lr) == 1 else lr
    estimator = TSimCNE(
        epochs=tuple(args.epochs), batch_size=args.batch_size, backbone=args.backbone, lr=lr,
        recipe=args.recipe, pretrain_loss=args.pretrain_loss,
        time_budget=60 * args.budget_minutes if args.budget_minutes else None,
        hidden_dim=args.hidden_dim, weight_decay=args.weight_decay,
        pretrain_dim=args.pretrain_dim, warmup_epochs=args.warmup_epochs,
        augmentation=args.augmentation, crop_scale=tuple(args.crop_scale),
        device=args.device, random_state=args.seed,
        image_size=args.image_size or "auto", verbose=True,
        precision=args.precision, callbacks=callbacks,
    )
    start = time.perf_counter()
    with stage_maps.watching():
        train_embedding = estimator.fit_transform(x_train)
    train_s = time.perf_counter() - start
    epochs = estimator.epochs_
    test_embedding = estimator.transform(x_test)
    if args.save_model:
        estimator.save(args.save_model)
    rows = {"t-SimCNE": {
        "knn_accuracy": knn_accuracy(train_embedding, y_train, test_embedding, y_test),
        "train_s": train_s, "epochs": list(epochs), "backbone": estimator.model_.backbone,
        "budget_s": 60 * args.budget_minutes if args.budget_minutes else None,
        "mean_seconds_per_epoch": train_s / sum(epochs),  # over all stages (readout: cheap)
        "batch_size": estimator.batch_size_,
        "mean_views_per_s": 2 * (args.n_train // estimator.batch_size_) * estimator.batch_size_
        * sum(epochs) / train_s,
        "median_epoch_s_per_stage": clock.median_epoch_s(),
        "final_losses": [float(h[-1]) for h in estimator.loss_history_ if len(h)],
        "knn_at_stage_ends": stage_maps.accuracies,
    }}
    print(f"t-SimCNE: kNN {rows['t-SimCNE']['knn_accuracy']:.3f}, {train_s:.0f} s", flush=True)
    if args.baselines:
        start = time.perf_counter()
        pixel_train, pixel_test = pixel_tsne_baseline(x_train, x_test, random_state=args.seed)
        rows["openTSNE on pixels"] = {
            "knn_accuracy": knn_accuracy(pixel_train, y_train, pixel_test, y_test),
            "train_s": time.perf_counter() - start}
        start = time.perf_counter()
        h_train = estimator.transform(x_train, features=True)
        h_test = estimator.transform(x_test, features=True)
        tsne_h_train, tsne_h_test = pixel_tsne_baseline(h_train, h_test, random_state=args.seed)
        rows["openTSNE on our H features"] = {
            "knn_accuracy": knn_accuracy(tsne_h_train, y_train, tsne_h_test, y_test),
            "train_s": time.perf_counter() - start}
        rows["kNN on our H features"] = {"knn_accuracy": knn_accuracy(
            h_train, y_train, h_test, y_test)}
        rows["kNN on raw pixels"] = {"knn_accuracy": knn_accuracy(
            x_train.reshape(len(x_train), -1), y_train, x_test.reshape(len(x_test), -1), y_test)}
        for name, row in rows.items():
            print(f"{name}: kNN {row['knn_accuracy']:.3f}")
    write_json(args.name, {"args": vars(args), "peak_rss_mib": peak_rss_mib(), "rows": rows},
               args.out or RESULTS_DIR)


def add_split_arguments(parser: argparse.ArgumentParser) -> None:
    """``--dataset``, ``--n-train`` and ``--n-test``: the split :func:`load_split` reads."""
    parser.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "shapes"])
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--n-test", type=int, default=1000)


def batch_size_argument(text: str):
    """``--batch-size``: ``"auto"`` or a whole number."""
    return text if text == "auto" else int(text)


class EpochClock:
    """A training callback that notes when every epoch of every stage ends."""

    def __init__(self):
        self.ends = {}

    def __call__(self, stage: int, epoch: int, loss: float) -> None:
        self.ends.setdefault(stage, []).append(time.perf_counter())

    def median_epoch_s(self) -> list:
        """Per stage, the median time between consecutive epoch ends (None for one epoch).

        The first epoch of a stage has no earlier end to be timed from, and
        is left out with whatever the stage set up before it.
        """
        return [float(np.median(np.diff(ends))) if len(ends) > 1 else None
                for ends in self.ends.values()]


class StageMaps(Callback):
    """A training callback that scores the map at the end of every 2-D stage.

    ``accuracies`` maps the stage (0-based) to ``{"held_out": ..., "training_map":
    ...}``: the held-out images placed by the network as it is at the stage's
    end, among the training images' map, and a tenth of the training map
    classified by the rest (:func:`knn_accuracy`).  The network is the one
    ``fit`` trains, seen through :meth:`watching`; the held-out images must
    be grey uint8 images that training uses as they are (both datasets here,
    at the CPU's default image size).
    """

    def __init__(self, train_labels, test_images, test_labels):
        self.train_labels, self.test_labels = train_labels, test_labels
        self.test_batches = torch.from_numpy(test_images[:, None]).split(256)
        self.network, self.accuracies = None, {}

    @contextlib.contextmanager
    def watching(self):
        """Within it, the estimator's calls to ``train`` let this callback see the network."""
        real_train = estimator_module.train

        def train(network, *args, **kwargs):
            self.network = network
            return real_train(network, *args, **kwargs)

        estimator_module.train = train
        try:
            yield
        finally:
            estimator_module.train = real_train

    def on_stage_end(self, stage: int, embedding) -> None:
        if embedding.shape[1] != 2:
            return
        test = embed(self.network, self.test_batches,
                     device=next(self.network.parameters()).device)
        self.accuracies[stage] = {
            "held_out": knn_accuracy(embedding, self.train_labels, test, self.test_labels),
            "training_map": knn_accuracy(embedding, self.train_labels)}


def load_split(dataset: str, n_train: int, n_test: int, data_dir=None):
    """Training images and labels, then held-out images and labels, of ``dataset``."""
    if dataset == "shapes":
        images, labels = make_shapes(n_train + n_test, seed=0)
        return images[:n_train], labels[:n_train], images[n_train:], labels[n_train:]
    x_train, y_train = load_fashion_mnist("train", data_dir)
    x_test, y_test = load_fashion_mnist("test", data_dir)
    return x_train[:n_train], y_train[:n_train], x_test[:n_test], y_test[:n_test]


if __name__ == "__main__":
    main()
