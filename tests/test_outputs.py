"""The command line's --out folder: checked before any work, written as one set, never
silently replacing another command's results."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import fill_disk

from napari_tsimcne import TSimCNE, outputs
from napari_tsimcne.cli import main

TINY_TRAINING = ["--epochs", "1", "1", "1", "--batch-size", "16", "--backbone", "resnet10-w8",
                 "--device", "cpu", "--seed", "0", "--quiet"]
NO_CHECKPOINTS = ["--checkpoint-every", "0"]


@pytest.fixture(scope="module")
def inputs(images, tmp_path_factory) -> Path:
    """A folder with images.npy (40 images) and new.npy (7 of them)."""
    folder = tmp_path_factory.mktemp("inputs")
    np.save(folder / "images.npy", images[:40])
    np.save(folder / "new.npy", images[:7])
    return folder


@pytest.fixture(scope="module")
def fitted_folder(inputs, tmp_path_factory) -> Path:
    """The --out folder of one fit without checkpoints; copy it before changing it."""
    out = tmp_path_factory.mktemp("fit") / "out"
    assert main(["fit", str(inputs / "images.npy"), "--out", str(out), *TINY_TRAINING,
                 *NO_CHECKPOINTS]) == 0
    return out


@pytest.fixture
def fit_out(fitted_folder, tmp_path) -> Path:
    return Path(shutil.copytree(fitted_folder, tmp_path / "fit-out"))


@pytest.fixture
def no_work(monkeypatch):
    """Makes training or placing images fail the test: checks must come first."""
    def work(*args, **kwargs):
        raise AssertionError("the work started before --out was checked")

    monkeypatch.setattr(TSimCNE, "fit_transform", work)
    monkeypatch.setattr(TSimCNE, "transform", work)


def contents(folder: Path) -> dict:
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def commands(inputs: Path, model: Path, out: Path) -> dict:
    return {
        "fit": ["fit", str(inputs / "images.npy"), "--out", str(out), *TINY_TRAINING,
                *NO_CHECKPOINTS],
        "transform": ["transform", str(model), str(inputs / "new.npy"), "--out", str(out),
                      "--device", "cpu"],
        "demo": ["demo", "--n-train", "20", "--n-test", "10", "--out", str(out), "--epochs", "1",
                 "--device", "cpu", "--quiet"],
    }


# ------------------------------------------------------------- all or nothing
@pytest.mark.slow
def test_a_disk_that_fills_while_fit_writes_keeps_the_earlier_outputs_whole(
        inputs, small_disk, monkeypatch, capsys):
    disk = small_disk(8 << 20)
    out = disk / "out"
    fit = commands(inputs, None, out)["fit"]
    assert main(fit) == 0
    earlier = contents(out)
    real_fit_transform = TSimCNE.fit_transform

    def train_then_fill_the_disk(self, *args, **kwargs):
        embedding = real_fit_transform(self, *args, **kwargs)
        fill_disk(disk, leave=64 << 10)  # room for the embedding files, not for the model
        return embedding

    monkeypatch.setattr(TSimCNE, "fit_transform", train_then_fill_the_disk)
    capsys.readouterr()
    assert main([*fit, "--seed", "1", "--overwrite"]) == 2  # another seed: another map
    assert capsys.readouterr().err == (
        f"napari-tsimcne: error: Could not write {out / 'model.pt'} (No space left on device); "
        "any earlier file there is unchanged. Free some disk space or choose another folder.\n")
    assert contents(out) == earlier  # not the new embedding beside the old model


# ------------------------------------------------------- checked before work
@pytest.mark.parametrize("command", ["fit", "transform", "demo"])
def test_an_unwritable_out_is_refused_before_any_work(command, inputs, fitted_folder,
                                                      small_disk, no_work, capsys):
    read_only = small_disk(1 << 20, read_only=True)
    assert main(commands(inputs, fitted_folder / "model.pt", read_only)[command]) == 2
    assert capsys.readouterr().err == (
        f"napari-tsimcne: error: Cannot write to --out {read_only} (Read-only file system); "
        "choose a folder you can write to.\n")


@pytest.mark.parametrize("command", ["fit", "transform", "demo"])
def test_too_little_free_space_is_refused_before_any_work(command, inputs, fitted_folder,
                                                          small_disk, no_work, capsys):
    disk = small_disk(1 << 20)
    assert main(commands(inputs, fitted_folder / "model.pt", disk)[command]) == 2
    assert re.fullmatch(
        rf"napari-tsimcne: error: Not enough free disk space in --out {disk}: the outputs need "
        r"about \d+\.\d MiB, 1\.0 MiB are free\. Free some space or choose another --out "
        r"folder\.\n", capsys.readouterr().err)


def test_the_space_asked_for_covers_what_fit_writes(inputs, tmp_path, monkeypatch):
    asked = []
    real_check = outputs.check_space
    monkeypatch.setattr(outputs, "check_space",
                        lambda folder, needed: asked.append(needed) or real_check(folder, needed))
    out = tmp_path / "out"
    assert main(["fit", str(inputs / "images.npy"), "--out", str(out), *TINY_TRAINING,
                 "--checkpoint-every", "1"]) == 0
    written = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    assert len(asked) == 1 and written <= asked[0]


# ------------------------------------------------ another command's results
def test_transform_does_not_replace_the_fit_it_is_pointed_at(inputs, fit_out, capsys):
    earlier = contents(fit_out)
    transform = commands(inputs, fit_out / "model.pt", fit_out)["transform"]
    assert main(transform) == 2
    assert capsys.readouterr().err == (
        f"napari-tsimcne: error: --out {fit_out} holds the outputs of 'napari-tsimcne fit' "
        "(embedding.csv, embedding.npz, model.pt, map.png); use --overwrite to replace them or "
        "another --out folder.\n")
    assert contents(fit_out) == earlier
    assert main([*transform, "--overwrite"]) == 0
    assert len((fit_out / "embedding.csv").read_text().splitlines()) == 1 + 7
    assert (fit_out / "model.pt").read_bytes() == earlier["model.pt"]
    assert json.loads((fit_out / outputs.MARKER).read_text())["command"] == "transform"


def test_transform_replaces_its_own_earlier_results(inputs, fitted_folder, tmp_path):
    transform = commands(inputs, fitted_folder / "model.pt", tmp_path / "new")["transform"]
    assert main(transform) == 0
    assert main(transform) == 0


def test_fit_does_not_replace_an_earlier_fit_unless_asked(inputs, fit_out, capsys):
    earlier = contents(fit_out)
    fit = commands(inputs, None, fit_out)["fit"]
    assert main(fit) == 2
    assert capsys.readouterr().err == (
        f"napari-tsimcne: error: --out {fit_out} holds the outputs of 'napari-tsimcne fit' "
        "(embedding.csv, embedding.npz, model.pt, map.png); use --overwrite to replace them or "
        "another --out folder.\n")
    assert contents(fit_out) == earlier
    assert main([*fit, "--seed", "1", "--overwrite"]) == 0
    assert (fit_out / "embedding.npz").read_bytes() != earlier["embedding.npz"]


@pytest.mark.slow
def test_fit_over_an_interrupted_run_offers_resume_and_overwrite_starts_over(
        inputs, tmp_path, capsys):
    out = tmp_path / "out"
    fit = ["fit", str(inputs / "images.npy"), "--out", str(out), *TINY_TRAINING,
           "--checkpoint-every", "1"]
    assert main(fit) == 0
    for name in [*outputs.OUTPUT_FILES, outputs.MARKER]:
        (out / name).unlink(missing_ok=True)  # as if it had been stopped before the end
    capsys.readouterr()
    assert main(fit) == 2
    assert capsys.readouterr().err == (
        f"napari-tsimcne: error: --out {out} holds the outputs of an earlier run (checkpoints/); "
        "use --resume to continue that run, --overwrite to replace them or another --out "
        "folder.\n")
    assert main([*fit, "--resume"]) == 0
    assert main([*fit, "--overwrite"]) == 0  # the earlier checkpoints are deleted first


def test_demo_does_not_replace_a_fit(inputs, fit_out, no_work, capsys):
    earlier = contents(fit_out)
    assert main(commands(inputs, None, fit_out)["demo"]) == 2
    assert "holds the outputs of 'napari-tsimcne fit'" in capsys.readouterr().err
    assert contents(fit_out) == earlier
