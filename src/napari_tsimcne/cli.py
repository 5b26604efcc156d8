"""The ``napari-tsimcne`` command line: ``fit``, ``transform``, ``demo`` and ``info``.

Every command reports bad input (a missing file, an unreadable image, a
parameter out of range) as one line ``napari-tsimcne: error: ...`` and exits
with status 2.  Torch, scikit-learn and matplotlib are imported by the
commands that use them, so that ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

from . import __version__
from .atomic import write_file
from .clock import format_duration
from .datasets import FASHION_MNIST_CLASSES, load_digits_images, load_fashion_mnist
from .defaults import (
    CHECKPOINT_EVERY, CPU_BATCH_SIZE, CPU_IMAGE_SIZE, DEFAULT_MINUTES, DEFAULT_SEED,
    GPU_BATCH_SIZE, MAX_IMAGE_SIDE, MIN_BATCH_SIZE, PAPER_CROP_SCALE,
)
from .errors import USER_ERRORS
from .files import ACCEPTED_INPUTS, embedding_file_size, read_images, write_embedding
from .schedule import PAPER_EPOCHS, batch_size_for, make_stages, stage_epochs

__all__ = ["DEMO_SETTINGS", "main"]

PROG = "napari-tsimcne"


#: Training of ``demo``, one entry per dataset.  ``n_train`` and ``n_test``
#: are the numbers of training and held-out images (a stratified sample);
#: every other key is a :class:`~napari_tsimcne.TSimCNE` parameter.
#: ``benchmarks/RESULTS.md`` ("The demo") has the runs that chose them.
DEMO_SETTINGS = {
    "shapes": {
        "n_train": 2000,
        "n_test": 500,
        "epochs": (45, 100, 10),
        # In the same 150 s, resnet10-w8 trains twice the epochs of
        # resnet10-w16 and maps the held-out shapes at 0.68 instead of 0.52.
        "backbone": "resnet10-w8",
        "batch_size": 64,
        # Crops of at least half the image keep the shape in view.
        "crop_scale": (0.5, 1.0),
        "augmentation": "microscopy",
    },
    "digits": {
        "n_train": 1437,
        "n_test": 360,
        "epochs": (50, 5, 25),
        # Small batches give a small dataset more optimiser steps per epoch;
        # batch 32 beat 64 and 256.
        "batch_size": 32,
        # The 8x8 digits are upsampled so that crops keep some stroke detail.
        "image_size": 16,
        # The paper's crops: 0.769 here against 0.739 for (0.3, 1) and 0.744 for (0.5, 1).
        "crop_scale": PAPER_CROP_SCALE,
        "augmentation": "natural",
    },
    "fashion-mnist": {
        "n_train": 2000,
        "n_test": 500,
        "epochs": (20, 2, 8),
        "batch_size": 64,
        "augmentation": "natural",
    },
}

#: Room left for the demo's summary.json when checking the free space.
SUMMARY_SIZE = 2**16

def main(argv=None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help and usage errors, as a status rather than an exit
        return exit_.code
    try:
        args.run(args)
    except BrokenPipeError:
        # Output piped into e.g. `head`, which stopped reading: as Python's
        # documentation advises, point stdout at devnull so the exit flush is quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except USER_ERRORS as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted{_resume_hint(args)}", file=sys.stderr)
        return 130
    return 0


# ------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its four sub-commands."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Unsupervised 2-D maps of image collections with t-SimCNE "
        "(Böhm, Berens & Kobak, ICLR 2023).",
        epilog=f"Run '{PROG} COMMAND --help' for the options of a command. "
        f"Start with '{PROG} demo'.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _add_fit_parser(commands)
    _add_transform_parser(commands)
    _add_demo_parser(commands)
    _add_info_parser(commands)
    return parser


def _add_fit_parser(commands) -> None:
    fit = commands.add_parser(
        "fit", help="train a map of a collection of images",
        description="Train t-SimCNE on a collection of images and write their 2-D map: "
        "embedding.csv, embedding.npz, model.pt and map.png in the --out folder. The "
        "defaults suit a CPU; on a GPU use more epochs and a larger batch.",
    )
    fit.add_argument("input", metavar="INPUT", help=f"the images: {ACCEPTED_INPUTS}")
    _add_axes_argument(fit, otherwise="refused, naming the layouts to choose from")
    _add_output_argument(fit, required=True, replacing=(
        "results already there (of an earlier fit or another command) are replaced only "
        "with --overwrite, or with --resume when it continues that fit"),
        overwriting="replace the results already in --out, and delete an earlier run's "
        "checkpoints there before training")
    _add_training_arguments(
        fit, epochs_default=f"none: --minutes {DEFAULT_MINUTES}",
        minutes_default=f"{DEFAULT_MINUTES} unless --epochs is given")
    fit.add_argument(
        "--batch-size", type=int, default=None, metavar="B",
        help="images per training step, lowered to the number of images if larger "
        f"(default: about an eighth of the images, from {MIN_BATCH_SIZE} to {CPU_BATCH_SIZE} "
        f"on a CPU and {GPU_BATCH_SIZE} on a GPU; the napari widget and TSimCNE derive it "
        "the same way)",
    )
    fit.add_argument(
        "--backbone", default="auto",
        help="'resnet10', 'resnet18' or 'resnet34', optionally narrowed as in 'resnet10-w32'; "
        "'auto' (the default) is resnet18 on a GPU and a narrower, faster ResNet on a CPU",
    )
    fit.add_argument(
        "--augmentation", choices=("auto", "natural", "microscopy"), default="auto",
        help="'natural' for photographs: SimCLR's crops, flips and colour jitter; "
        "'microscopy' for cells and tissue: also vertical flips, 90-degree rotations and "
        "intensity jitter per channel; 'auto' (the default): natural for colour "
        "photographs (3 or 4 channels of uint8), microscopy for everything else",
    )
    fit.add_argument(
        "--image-size", type=int, default=None, metavar="PIXELS",
        help="resize the images to PIXELS x PIXELS (default: the size of a stack, the "
        "median size of a folder of differently sized images, shrunk with its aspect kept "
        f"to at most {MAX_IMAGE_SIDE} px on its longer side and to what training fits in "
        f"the free memory; on a CPU, square images larger than {CPU_IMAGE_SIZE} px are "
        f"shrunk to {CPU_IMAGE_SIZE} px)",
    )
    fit.add_argument(
        "--lr", type=_learning_rate, default="auto",
        help="peak learning rate (default: 'auto': 0.03 * batch size / 256 as in the paper, "
        "and at least 0.12 when pre-training is shorter than 100 epochs)",
    )
    fit.add_argument(
        "--precision", choices=("auto", "bf16", "fp32"), default="auto",
        help="arithmetic of the backbone: 'auto' (the default) is bfloat16 where the "
        "hardware computes in it natively (CUDA GPUs with bf16; CPUs with AVX-512 BF16 or "
        "AMX) and float32 elsewhere",
    )
    fit.add_argument(
        "--compile", action="store_true",
        help="compile the network with torch.compile: slow to start, faster steps on a GPU",
    )
    fit.add_argument(
        "--checkpoint-every", type=_whole_number, default=CHECKPOINT_EVERY, metavar="N",
        help="write a checkpoint to OUT/checkpoints every N epochs and at the end of every "
        "stage (default: %(default)s; 0: no checkpoints)",
    )
    fit.add_argument(
        "--resume", action="store_true",
        help="continue an interrupted run from the newest good checkpoint in OUT/checkpoints "
        "(same INPUT and options; the result equals an uninterrupted run on a CPU)",
    )
    fit.set_defaults(run=run_fit)


def _add_transform_parser(commands) -> None:
    transform = commands.add_parser(
        "transform", help="place new images on a trained map",
        description="Place new images on the map of a model written by 'fit'. Writes "
        "embedding.csv, embedding.npz and map.png (the training map in grey, the new "
        "images as crosses) in the --out folder.",
    )
    transform.add_argument("model", metavar="MODEL", help="model file written by 'fit' (model.pt)")
    transform.add_argument("input", metavar="INPUT", help=f"the new images: {ACCEPTED_INPUTS}")
    _add_axes_argument(transform, otherwise="the layout the model was trained on")
    _add_output_argument(transform, required=True, replacing=(
        "an earlier transform's results there are replaced, those of other commands only "
        "with --overwrite"), overwriting=_OVERWRITE_OTHERS)
    _add_device_argument(transform)
    transform.set_defaults(run=run_transform)


def _add_demo_parser(commands) -> None:
    demo = commands.add_parser(
        "demo", help="map a bundled dataset and measure the map's quality",
        description="Train on a labelled dataset that needs no download, place held-out "
        "images with 'transform', and print the k-nearest-neighbour accuracy (k=15) of the "
        "held-out images among the training images, next to that of openTSNE on the "
        "images' pixels for the same split. Writes map.png, embedding.csv, "
        "held_out.csv, model.pt and summary.json in the --out folder. The training settings of each "
        "dataset are in napari_tsimcne.cli.DEMO_SETTINGS.",
    )
    demo.add_argument(
        "--dataset", choices=tuple(DEMO_SETTINGS), default="shapes",
        help="'shapes': generated grey shapes whose class is carried by form alone, "
        "while position, size, rotation, brightness and background vary (32x32; pixel "
        "neighbours mislead); 'digits': scikit-learn's 1,797 handwritten digits (8x8, "
        "bundled); 'fashion-mnist': Fashion-MNIST from Debian's dataset-fashion-mnist "
        "package (default: %(default)s)",
    )
    demo.add_argument("--n-train", type=int, default=None, metavar="N",
                      help=f"number of training images (default: {_demo_defaults('n_train')})")
    demo.add_argument("--n-test", type=int, default=None, metavar="M",
                      help=f"number of held-out images (default: {_demo_defaults('n_test')})")
    _add_output_argument(demo, required=False, replacing=(
        "an earlier demo's results there are replaced, those of other commands only with "
        "--overwrite"), overwriting=_OVERWRITE_OTHERS)
    _add_training_arguments(demo, epochs_default=_demo_defaults("epochs"),
                            minutes_default="none: the epochs above")
    demo.set_defaults(run=run_demo)


def _add_info_parser(commands) -> None:
    info = commands.add_parser(
        "info", help="describe a saved model",
        description="Print the parameters, the settings and seed the training used, the "
        "image shape, library versions, training loss and checkpoint folder of a model "
        "file written by 'fit' or 'demo'.",
    )
    info.add_argument("model", metavar="MODEL", help="model file (model.pt)")
    info.set_defaults(run=run_info)


def _demo_defaults(key: str) -> str:
    """``"digits: ..., fashion-mnist: ..."``: the demo settings' values of ``key``, for help texts."""
    def text(value):
        return " ".join(map(str, value)) if isinstance(value, tuple) else str(value)

    return ", ".join(f"{name}: {text(settings[key])}" for name, settings in DEMO_SETTINGS.items())


_OVERWRITE_OTHERS = "replace the results of other commands already in --out"


def _add_output_argument(parser, *, required: bool, replacing: str, overwriting: str) -> None:
    """``--out`` and ``--overwrite``; ``replacing`` says which results in --out are replaced
    without ``--overwrite``, ``overwriting`` what ``--overwrite`` does."""
    default = None if required else Path("demo-output")
    parser.add_argument(
        "--out", type=Path, required=required, default=default, metavar="DIR",
        help="folder for the results, created if missing"
        + ("" if required else " (default: %(default)s)") + f"; {replacing}. Writability "
        "and free space are checked before the work starts, and the new results appear "
        "together or not at all",
    )
    parser.add_argument("--overwrite", action="store_true", help=overwriting)


def _add_axes_argument(parser, *, otherwise: str) -> None:
    parser.add_argument(
        "--axes", type=str.upper, default=None, metavar="LETTERS",
        help="the layout of INPUT, one letter per axis: N, T or Z for axes along which the "
        "images lie (every index along them an image), C for channels, Y and X for height "
        "and width; e.g. NCYX for channels first, TZYX for every plane of every time point "
        "as an image, TCYX for the planes as channels. For a folder, the layout of each "
        "file (CYX for channels first). Default: the axes a TIFF file records, else "
        "(N, H, W) or (N, H, W, C) where the shape leaves no doubt, else " + otherwise,
    )


def _add_device_argument(parser) -> None:
    parser.add_argument(
        "--device", default="auto",
        help="'auto' (the default: a CUDA GPU, then Apple's MPS, then the CPU), 'cpu', "
        "'cuda', 'cuda:N' or 'mps'",
    )


def _add_training_arguments(parser, *, epochs_default: str, minutes_default: str) -> None:
    """Options shared by ``fit`` and ``demo``."""
    schedule = parser.add_mutually_exclusive_group()
    schedule.add_argument(
        "--minutes", type=float, default=None, metavar="M",
        help="time budget of training: the epochs of each stage are planned on this machine "
        f"to fill M minutes (default: {minutes_default})",
    )
    schedule.add_argument(
        "--epochs", type=int, nargs="+", default=None, metavar="N",
        help="epochs of pre-training, readout and fine-tuning (three numbers; the paper "
        "uses 1000 50 450 on a GPU; a fourth sets the final readout's, by default the "
        "readout's), or one number to train the 2-D map directly "
        f"(default: {epochs_default})",
    )
    _add_device_argument(parser)
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED,
        help="random seed; on a CPU the same seed gives the same map (default: %(default)s)",
    )
    parser.add_argument("--quiet", action="store_true", help="hide the progress bars")


def _whole_number(text: str) -> int:
    """An option's whole number >= 0, refused while the arguments are read (before any work)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def _learning_rate(text: str):
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


# ---------------------------------------------------------------- commands
def run_fit(args) -> None:
    """``fit``: train on INPUT and write the map, the model and a plot to ``--out``."""
    from . import distributed, outputs
    from .checkpoint import CheckpointFolder
    from .data import as_image_stack
    from .estimator import TSimCNE
    from .plotting import plot_embedding

    collection = read_images(args.input, axes=args.axes)
    images, labels, files, n_images = (collection.images, collection.labels, collection.files,
                                       collection.n_images)
    _print_note(collection.note)
    out = outputs.prepare(args.out, "fit", overwrite=args.overwrite, resume=args.resume)
    minutes = DEFAULT_MINUTES if args.epochs is None and args.minutes is None else args.minutes
    batch_size = "auto" if args.batch_size is None else _batch_size(args.batch_size, n_images)
    estimator = TSimCNE(
        epochs=tuple(args.epochs) if args.epochs else PAPER_EPOCHS,
        time_budget=_seconds(minutes), batch_size=batch_size,
        backbone=args.backbone, augmentation=args.augmentation, lr=args.lr,
        image_size="auto" if args.image_size is None else args.image_size,
        device=args.device, random_state=args.seed,
        verbose=not args.quiet, precision=args.precision, compile=args.compile,
        checkpoint_dir=out / outputs.CHECKPOINTS if args.checkpoint_every or args.resume else None,
        checkpoint_every=args.checkpoint_every or CHECKPOINT_EVERY, axes=collection.axes,
    )
    model_size, checkpoint_size = outputs.model_sizes(
        estimator, n_images, as_image_stack(images, axes=collection.axes).n_channels)
    needed = _map_files_size(n_images, labels, files) + model_size
    if estimator.checkpoint_dir is not None:
        needed += CheckpointFolder(estimator.checkpoint_dir).space_needed(checkpoint_size)
    outputs.check_space(out, needed)
    embedding, seconds = _timed(partial(estimator.fit_transform, resume=args.resume), images)
    if not distributed.is_main_process():
        return  # under torchrun, rank 0 writes the results
    with outputs.publish(out, "fit"):
        written = [
            write_embedding(out / "embedding.csv", embedding, labels, files),
            write_embedding(out / "embedding.npz", embedding, labels, files),
            estimator.save(out / "model.pt"),
            plot_embedding(embedding, labels, out / "map.png",
                           title=f"t-SimCNE map of {len(embedding)} images"),
        ]
    described = _describe(estimator.epochs_, estimator.time_budget, estimator.batch_size_)
    print(f"Trained on {len(embedding)} images ({described}) in "
          f"{format_duration(seconds)}.")
    _print_written(written)


def run_transform(args) -> None:
    """``transform``: place INPUT on the map of MODEL and write the result to ``--out``."""
    from . import outputs
    from .model import TSimCNEModel
    from .plotting import plot_embedding

    model = TSimCNEModel.load(args.model, device=args.device)
    collection = read_images(args.input, axes=args.axes, fallback_axes=(
        None if model.axes == "auto" else model.axes))
    images, labels, files = collection.images, collection.labels, collection.files
    _print_note(collection.note)
    out = outputs.prepare(args.out, "transform", overwrite=args.overwrite)
    outputs.check_space(out, _map_files_size(collection.n_images, labels, files))
    embedding, seconds = _timed(partial(model.transform, axes=collection.axes), images)
    with outputs.publish(out, "transform"):
        written = [
            write_embedding(out / "embedding.csv", embedding, labels, files),
            write_embedding(out / "embedding.npz", embedding, labels, files),
            plot_embedding(
                model.embedding, path=out / "map.png", new_points=embedding,
                title=f"{len(embedding)} new images on the map of {len(model.embedding)} "
                "training images",
            ),
        ]
    print(f"Placed {len(embedding)} images on the map in {format_duration(seconds)}.")
    _print_written(written)


def run_demo(args) -> None:
    """``demo``: train on a bundled dataset, place held-out images and report kNN accuracy."""
    from . import outputs
    from .data import as_image_stack
    from .estimator import TSimCNE
    from .metrics import knn_accuracy, pixel_tsne_baseline
    from .plotting import plot_embedding, png_size

    settings = dict(DEMO_SETTINGS[args.dataset])
    n_train, n_test = settings.pop("n_train"), settings.pop("n_test")
    if args.n_train is not None:
        n_train = args.n_train
    if args.n_test is not None:
        n_test = args.n_test
    train_images, train_labels, test_images, test_labels = _demo_data(
        args.dataset, n_train, n_test, args.seed
    )
    out = outputs.prepare(args.out, "demo", overwrite=args.overwrite)
    if args.epochs is not None:
        settings["epochs"] = tuple(args.epochs)
    settings["time_budget"] = _seconds(args.minutes)
    settings["batch_size"] = _batch_size(settings["batch_size"], len(train_images))
    estimator = TSimCNE(**settings, device=args.device, random_state=args.seed,
                        verbose=not args.quiet)
    model_size, _ = outputs.model_sizes(estimator, len(train_images),
                                        as_image_stack(train_images).n_channels)
    outputs.check_space(out, png_size() + model_size + SUMMARY_SIZE
                        + embedding_file_size("embedding.csv", len(train_images), train_labels)
                        + embedding_file_size("held_out.csv", len(test_images), test_labels))
    planned = (None if estimator.time_budget is not None
               else stage_epochs(estimator.epochs, estimator.recipe))
    described = _describe(planned, estimator.time_budget, estimator.batch_size)
    print(f"Training on {len(train_images)} {args.dataset} images ({described}); "
          f"{len(test_images)} images are held out.")
    start = time.perf_counter()
    embedding = estimator.fit_transform(train_images)
    test_embedding = estimator.transform(test_images)
    seconds = time.perf_counter() - start
    accuracy = knn_accuracy(embedding, train_labels, test_embedding, test_labels, k=15)
    pixel_train, pixel_test = pixel_tsne_baseline(train_images, test_images,
                                                  random_state=args.seed)
    pixel_accuracy = knn_accuracy(pixel_train, train_labels, pixel_test, test_labels, k=15)
    with outputs.publish(out, "demo"):
        written = [
            plot_embedding(
                embedding, train_labels, out / "map.png", new_points=test_embedding,
                class_names=_class_names(args.dataset), new_points_label="held out",
                title=f"t-SimCNE map of {args.dataset}: kNN accuracy of held-out images "
                f"{accuracy:.1%} (t-SNE on pixels: {pixel_accuracy:.1%})",
            ),
            write_embedding(out / "embedding.csv", embedding, train_labels),
            write_embedding(out / "held_out.csv", test_embedding, test_labels),
            estimator.save(out / "model.pt"),
            _write_summary(out / "summary.json", dataset=args.dataset, n_train=len(train_images),
                           n_test=len(test_images), knn_accuracy=accuracy,
                           pixel_tsne_knn_accuracy=pixel_accuracy, wall_s=seconds,
                           epochs=list(estimator.epochs_),
                           device=str(estimator.device_), backbone=estimator.backbone_,
                           settings={k: v for k, v in estimator.get_params().items()
                                     if k != "callbacks"}),
        ]
    print(f"kNN accuracy (k=15) of the {len(test_images)} held-out images: {accuracy:.3f}")
    print(f"The same with openTSNE on the images' pixels:  {pixel_accuracy:.3f}")
    print("Wall time (training and placing the held-out images): "
          f"{format_duration(seconds)}.")
    _print_written(written)


def run_info(args) -> None:
    """``info``: print what a model file holds."""
    from .model import TSimCNEModel

    model = TSimCNEModel.load(args.model, device="cpu")
    height, width, channels = model.image_shape
    print(f"Model file:   {args.model}")
    print(f"Images:       {height} x {width} pixels, {channels} channel(s); "
          f"map of {len(model.embedding)} training images")
    print(f"Backbone:     {model.backbone}")
    print("Versions:     " + ", ".join(f"{name} {v}" for name, v in model.versions.items()))
    print("Parameters:")
    for name, value in sorted(model.params.items()):
        print(f"  {name} = {value!r}")
    schedule = _describe(model.epochs, model.params.get("time_budget"), model.batch_size)
    print(f"Schedule:     {schedule}, recipe '{model.params['recipe']}'")
    augmentation = model.augmentation if isinstance(model.augmentation, str) else "custom"
    print(f"Used:         batch size {model.batch_size}, augmentation {augmentation}, "
          f"seed {model.random_state} (random_state={model.random_state} or "
          f"--seed {model.random_state} repeats the training)")
    folder = model.checkpoint_folder
    print("Checkpoints:  " + (f"written to {folder}" if folder else "none written"))
    print("Loss per stage (first epoch -> last epoch):")
    stages = make_stages(model.epochs, lr=1.0, recipe=model.params["recipe"])
    for stage, losses in zip(stages, model.loss_history):
        print(f"  {stage.name:<13} {len(losses):>5} epochs  {losses[0]:.4f} -> {losses[-1]:.4f}")
    if model.stopped_early:
        print("Training was stopped early.")


# ----------------------------------------------------------------- helpers
def _demo_data(dataset: str, n_train: int, n_test: int, seed):
    """Stratified training and held-out images with labels of a demo dataset.

    Digits are one pool split in two, and so are shapes, generated with
    seed 0 (the same images whatever the training seed); Fashion-MNIST samples
    its training images from the official training split and its held-out
    images from the test split.
    """
    if dataset == "fashion-mnist":
        train_images, train_labels = load_fashion_mnist("train")
        test_images, test_labels = load_fashion_mnist("test")
        _check_sample_size("--n-train", n_train, len(np.unique(train_labels)), len(train_labels))
        _check_sample_size("--n-test", n_test, len(np.unique(test_labels)), len(test_labels))
        train = _stratified_split(train_labels, n_train, None, seed)[0]
        test = _stratified_split(test_labels, n_test, None, seed)[0]
        return train_images[train], train_labels[train], test_images[test], test_labels[test]
    if dataset == "shapes":
        # Generated on demand: as many as asked for.
        n_classes = len(_class_names("shapes"))
        _check_sample_size("--n-train", n_train, n_classes)
        _check_sample_size("--n-test", n_test, n_classes)
        from .synthetic import make_shapes

        images, labels = make_shapes(n_train + n_test, seed=0)
    else:
        images, labels = load_digits_images()
        _check_sample_size("--n-train", n_train, len(np.unique(labels)), len(labels))
        _check_sample_size("--n-test", n_test, len(np.unique(labels)), len(labels))
        if n_train + n_test > len(images):
            raise ValueError(
                f"--n-train {n_train} plus --n-test {n_test} exceed the {len(images)} digits."
            )
    train, test = _stratified_split(labels, n_train, n_test, seed)
    return images[train], labels[train], images[test], labels[test]


def _check_sample_size(option: str, n: int, n_classes: int, available: int | None = None
                       ) -> None:
    """A stratified sample needs one image per class, and no more images than are
    ``available`` (``None``: generated on demand, as many as asked for)."""
    if n < n_classes:
        raise ValueError(f"{option} must be at least {n_classes} (one image per class), got {n}.")
    if available is not None and n > available:
        raise ValueError(f"{option} must be at most {available}, got {n}.")


def _class_names(dataset: str):
    """Class names of a demo dataset, for the legend of the map (``None``: the labels)."""
    if dataset == "shapes":
        from .synthetic import SHAPES

        return SHAPES
    return FASHION_MNIST_CLASSES if dataset == "fashion-mnist" else None


def _stratified_split(labels, n_first: int, n_second, seed) -> tuple[np.ndarray, np.ndarray]:
    """Indices of two disjoint stratified samples of ``labels``; ``n_second=None`` is the rest."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    if n_first == len(labels):
        return indices, indices[:0]
    return tuple(train_test_split(indices, train_size=n_first, test_size=n_second,
                                  stratify=labels, random_state=seed))


def _resume_hint(args) -> str:
    """How to go on after Ctrl-C, for a ``fit`` that writes checkpoints."""
    if getattr(args, "run", None) is not run_fit or not args.checkpoint_every:
        return ""
    return (f"; the same command with --resume continues from the newest checkpoint in "
            f"{args.out / 'checkpoints'}")


def _batch_size(requested: int, n_images: int) -> int:
    """``requested``, lowered with a note if there are fewer images (see ``batch_size_for``).

    Fewer than two images are left to the estimator, which refuses them.
    """
    if n_images < 2:
        return requested
    batch_size = batch_size_for(requested, n_images)
    if batch_size != requested:
        print(f"Note: batch size {requested} is larger than the {n_images} images; "
              f"using {batch_size}.")
    return batch_size


def _map_files_size(n_images: int, labels, files) -> int:
    """About the bytes of the embedding.csv, embedding.npz and map.png of fit and transform."""
    from .plotting import png_size

    return png_size() + sum(embedding_file_size(name, n_images, labels, files)
                            for name in ("embedding.csv", "embedding.npz"))


def _write_summary(path: Path, **summary) -> Path:
    """The demo's figures as JSON, for scripts and benchmarks."""
    text = json.dumps(summary, indent=2, default=str) + "\n"
    return write_file(path, lambda file: file.write(text), text=True)


def _timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def _seconds(minutes: float | None) -> float | None:
    """A time budget in seconds from ``--minutes`` (``None`` stays ``None``)."""
    if minutes is None:
        return None
    if not minutes > 0:
        raise ValueError(f"--minutes must be a positive number, got {minutes}.")
    return 60 * minutes


def _describe(epochs, time_budget, batch_size) -> str:
    """Schedule and batch, e.g. ``epochs 84 146 15 146 planned for 15 min 00 s, batch size 64``.

    ``epochs`` None: a ``time_budget`` (seconds) whose epochs are not planned yet.
    """
    if epochs is None:
        schedule = f"a time budget of {format_duration(time_budget)}"
    else:
        schedule = "epochs " + " ".join(str(e) for e in epochs)
        if time_budget is not None:
            schedule += f" planned for {format_duration(time_budget)}"
    return f"{schedule}, batch size {batch_size}"


def _print_note(note: str | None) -> None:
    if note is not None:
        print(f"Note: {note}")


def _print_written(paths) -> None:
    print("Wrote " + ", ".join(str(path) for path in paths))


if __name__ == "__main__":
    sys.exit(main())
