"""The command line, run in-process on tiny inputs with 1-epoch stages.

The images are the shared test images of ``conftest.py``.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_tsimcne import TSimCNE, TSimCNEModel
from napari_tsimcne.cli import DEMO_SETTINGS, main
from napari_tsimcne.datasets import FASHION_MNIST_DIR

N_IMAGES = 40
TINY_TRAINING = ["--epochs", "1", "1", "1", "--batch-size", "16", "--backbone", "resnet10-w8",
                 "--device", "cpu", "--seed", "0", "--quiet"]


@pytest.fixture(scope="module")
def stack(images) -> np.ndarray:
    """40 uint8 images (40, 16, 16) of the shared test images."""
    return images[:N_IMAGES]


@pytest.fixture(scope="module")
def fit_output(stack, tmp_path_factory) -> Path:
    """Output folder of one ``fit`` on a .npy stack, shared by the tests that read a model."""
    folder = tmp_path_factory.mktemp("fit")
    np.save(folder / "images.npy", stack)
    assert main(["fit", str(folder / "images.npy"), "--out", str(folder / "out"), *TINY_TRAINING]) == 0
    return folder / "out"


def read_csv(path) -> list[dict]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def assert_png(path, min_long_side=600) -> None:
    """A PNG of readable size with dark marks on it.

    Only the longer side has a floor: the map is drawn at equal aspect, so a
    1-epoch map that came out elongated is rightly a wide, low picture.
    """
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert max(image.size) >= min_long_side
        pixels = np.asarray(image.convert("L"))
    assert pixels.min() < 100, "the plot has no dark marks"


def assert_map_files(out: Path, n_rows: int, extra_columns=()) -> list[dict]:
    rows = read_csv(out / "embedding.csv")
    assert len(rows) == n_rows
    assert list(rows[0]) == ["index", "x", "y", *extra_columns]
    assert [int(row["index"]) for row in rows] == list(range(n_rows))
    with np.load(out / "embedding.npz") as saved:
        assert saved["embedding"].shape == (n_rows, 2)
        np.testing.assert_allclose(saved["embedding"][:, 0], [float(r["x"]) for r in rows], rtol=1e-6)
    assert_png(out / "map.png")
    return rows


def test_fit_npy_writes_map_model_and_plot(fit_output):
    rows = assert_map_files(fit_output, N_IMAGES)
    model = TSimCNE.load(fit_output / "model.pt", device="cpu")
    assert model.image_shape_ == (16, 16, 1)
    assert [len(h) for h in model.loss_history_] == [1, 1, 1, 1]
    np.testing.assert_allclose(model.embedding_[:, 1], [float(r["y"]) for r in rows], rtol=1e-6)


def test_fit_folder_of_differently_sized_pngs_lists_files(tmp_path, capsys):
    rng = np.random.default_rng(1)
    folder = tmp_path / "images"
    folder.mkdir()
    names = [f"cell_{i:02d}.png" for i in range(N_IMAGES)]
    for name in reversed(names):  # written out of order: the CSV must follow the names
        size = tuple(rng.integers(12, 24, size=2))
        Image.fromarray(rng.integers(0, 256, size=size, dtype=np.uint8)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")

    assert main(["fit", str(folder), "--out", str(tmp_path / "out"), *TINY_TRAINING,
                 "--batch-size", "64"]) == 0
    rows = assert_map_files(tmp_path / "out", N_IMAGES, extra_columns=["file"])
    assert [row["file"] for row in rows] == names
    assert "batch size 64 is larger than the 40 images; using 32" in capsys.readouterr().out


def test_fit_tiff_stack_and_printed_summary(stack, tmp_path, capsys):
    rgb = np.repeat(stack[..., None], 3, axis=-1)
    tifffile.imwrite(tmp_path / "stack.tif", rgb, photometric="rgb")
    assert main(["fit", str(tmp_path / "stack.tif"), "--out", str(tmp_path / "out"),
                 *TINY_TRAINING]) == 0
    assert_map_files(tmp_path / "out", N_IMAGES)
    printed = capsys.readouterr().out
    assert f"Trained on {N_IMAGES} images" in printed and " s." in printed  # the wall time
    assert str(tmp_path / "out" / "model.pt") in printed
    assert TSimCNE.load(tmp_path / "out" / "model.pt").image_shape_ == (16, 16, 3)


def write_idx_gz(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in the IDX format of MNIST, gzipped."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        n.to_bytes(4, "big") for n in array.shape
    )
    with gzip.open(path, "wb") as file:
        file.write(header + array.astype(np.uint8).tobytes())


def test_fit_idx_reads_labels_beside_it(stack, tmp_path):
    labels = np.arange(N_IMAGES) % 4
    write_idx_gz(tmp_path / "train-images-idx3-ubyte.gz", stack)
    write_idx_gz(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    assert main(["fit", str(tmp_path / "train-images-idx3-ubyte.gz"), "--out",
                 str(tmp_path / "out"), *TINY_TRAINING]) == 0
    rows = assert_map_files(tmp_path / "out", N_IMAGES, extra_columns=["label"])
    assert [int(row["label"]) for row in rows] == labels.tolist()
    with np.load(tmp_path / "out" / "embedding.npz") as saved:
        np.testing.assert_array_equal(saved["labels"], labels)


def test_transform_places_new_images(fit_output, stack, tmp_path, capsys):
    np.save(tmp_path / "new.npy", stack[:7])
    assert main(["transform", str(fit_output / "model.pt"), str(tmp_path / "new.npy"),
                 "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    rows = assert_map_files(tmp_path / "out", 7)
    # the training images, placed again, land where fit put them
    fitted_rows = read_csv(fit_output / "embedding.csv")[:7]
    np.testing.assert_allclose([float(r["x"]) for r in rows],
                               [float(r["x"]) for r in fitted_rows], rtol=1e-4, atol=1e-4)
    assert "Placed 7 images" in capsys.readouterr().out


def test_info_prints_parameters_and_losses(fit_output, capsys):
    assert main(["info", str(fit_output / "model.pt")]) == 0
    printed = capsys.readouterr().out
    assert "16 x 16 pixels, 1 channel(s)" in printed
    assert "batch_size = 16" in printed
    assert "torch" in printed
    for stage in ("pre-training", "readout", "fine-tuning"):
        assert stage in printed


@pytest.mark.slow
def test_demo_prints_accuracy_next_to_pixel_tsne_and_writes_map(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--n-train", "100", "--n-test", "30", "--out", str(out),
                 "--epochs", "1", "1", "1", "--device", "cpu", "--quiet"]) == 0
    printed = capsys.readouterr().out
    ours = re.search(r"kNN accuracy \(k=15\) of the 30 held-out images: ([0-9.]+)", printed)
    pixels = re.search(r"openTSNE on the images' pixels: +([0-9.]+)", printed)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"] == "shapes"  # the default: where pixel neighbours mislead
    assert float(ours[1]) == pytest.approx(summary["knn_accuracy"], abs=5e-4)
    assert float(pixels[1]) == pytest.approx(summary["pixel_tsne_knn_accuracy"], abs=5e-4)
    assert 0 <= summary["pixel_tsne_knn_accuracy"] <= 1
    assert_png(out / "map.png")
    train_rows, test_rows = read_csv(out / "embedding.csv"), read_csv(out / "held_out.csv")
    assert (len(train_rows), len(test_rows)) == (100, 30)
    assert sorted({int(r["label"]) for r in train_rows}) == list(range(5))  # stratified
    assert TSimCNE.load(out / "model.pt").image_shape_[:2] == (32, 32)


@pytest.mark.slow
def test_demo_digits(tmp_path, capsys):
    assert main(["demo", "--dataset", "digits", "--n-train", "100", "--n-test", "30",
                 "--out", str(tmp_path), "--epochs", "1", "--device", "cpu", "--quiet"]) == 0
    assert "kNN accuracy (k=15) of the 30 held-out images" in capsys.readouterr().out
    assert sorted({int(r["label"]) for r in read_csv(tmp_path / "embedding.csv")}) == list(
        range(10))
    assert TSimCNE.load(tmp_path / "model.pt").image_shape_[:2] == (16, 16)


@pytest.mark.slow
@pytest.mark.skipif(not (FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Fashion-MNIST is not installed")
def test_demo_fashion_mnist(tmp_path, capsys):
    assert main(["demo", "--dataset", "fashion-mnist", "--n-train", "64", "--n-test", "20",
                 "--out", str(tmp_path), "--epochs", "1", "--device", "cpu", "--quiet"]) == 0
    assert "kNN accuracy (k=15) of the 20 held-out images" in capsys.readouterr().out
    assert len(read_csv(tmp_path / "held_out.csv")) == 20
    assert_png(tmp_path / "map.png")


@pytest.mark.parametrize("arguments, message", [
    (["--dataset", "digits", "--n-train", "1700", "--n-test", "200"], "exceed the 1797 digits"),
    (["--dataset", "digits", "--n-train", "2000"], "--n-train must be at most 1797, got 2000"),
    (["--n-train", "4"], "--n-train must be at least 5 (one image per class), got 4"),
    (["--n-test", "0"], "--n-test must be at least 5 (one image per class), got 0"),
])
def test_demo_refuses_impossible_sample_sizes(tmp_path, capsys, arguments, message):
    assert main(["demo", *arguments, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_demo_settings_are_valid_estimator_parameters():
    for settings in DEMO_SETTINGS.values():
        params = {k: v for k, v in settings.items() if k not in ("n_train", "n_test")}
        TSimCNE(**params)  # an unknown key raises TypeError
        assert settings["n_train"] > 0 and settings["n_test"] > 0


@pytest.mark.parametrize("make_input, message", [
    (lambda d: d / "missing.npy", "does not exist"),
    (lambda d: write_text(d / "notes.txt"), "not a supported input"),
    (lambda d: write_text(d / "fake.npy"), "not a readable .npy"),
    (lambda d: save_npy(d / "one.npy", np.zeros((16, 16))), "single 2-D image"),
    (lambda d: d, "holds no image files"),
])
def test_bad_input_is_one_clear_error_line(tmp_path, capsys, make_input, message):
    path = make_input(tmp_path)
    assert main(["fit", str(path), "--out", str(tmp_path / "out"), *TINY_TRAINING]) == 2
    err = capsys.readouterr().err
    assert err.startswith("napari-tsimcne: error: ")
    assert message in err and str(path) in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bad_parameters_and_model_file_are_errors(fit_output, stack, tmp_path, capsys):
    np.save(tmp_path / "images.npy", stack)
    assert main(["fit", str(tmp_path / "images.npy"), "--out", str(tmp_path / "out"),
                 *TINY_TRAINING, "--epochs", "1", "1"]) == 2
    assert "epochs" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "images.npy")]) == 2
    assert "not a napari-tsimcne model file" in capsys.readouterr().err
    rgb = tmp_path / "rgb.npy"
    np.save(rgb, np.repeat(stack[:3, ..., None], 3, axis=-1))
    assert main(["transform", str(fit_output / "model.pt"), str(rgb), "--out", str(tmp_path)]) == 2
    assert "channel" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert main(["fit"]) == 2  # INPUT and --out missing
    assert "usage:" in capsys.readouterr().err


SCRIPT = Path(sys.executable).with_name("napari-tsimcne")


@pytest.mark.skipif(not SCRIPT.exists(), reason="console script not installed beside python")
def test_console_script_help():
    result = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in ("fit", "transform", "demo", "info"):
        assert command in result.stdout


def test_help_answers_without_loading_torch():
    code = ("import sys; from napari_tsimcne.cli import main; "
            "codes = [main(['--help']), main(['fit', '--help']), main(['demo', '--help'])]; "
            "heavy = [m for m in ('torch', 'sklearn', 'matplotlib', 'pandas') if m in sys.modules]; "
            "print(codes, heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "[0, 0, 0] []"


@pytest.mark.slow
def test_fit_derives_its_settings_from_the_images_as_the_widget_does(images, tmp_path, capsys):
    from napari_tsimcne.defaults import data_defaults

    many = np.concatenate([images] * 5)[:300]  # 300 grey uint8 images, 16 x 16
    np.save(tmp_path / "images.npy", many)
    out = tmp_path / "out"
    assert main(["fit", str(tmp_path / "images.npy"), "--out", str(out), "--epochs", "1", "1",
                 "1", "--backbone", "resnet10-w8", "--device", "cpu",
                 "--checkpoint-every", "1", "--quiet"]) == 0
    expected = data_defaults(300, 16, 16, 1, np.uint8, "cpu")
    model = TSimCNE.load(out / "model.pt")
    assert (model.batch_size_, model.augmentation_) == (expected.batch_size,
                                                        expected.augmentation) == (32, "microscopy")
    assert model.random_state_ == 0  # the default seed: the run can be repeated
    capsys.readouterr()
    assert main(["info", str(out / "model.pt")]) == 0
    printed = capsys.readouterr().out
    assert "batch size 32, augmentation microscopy, seed 0" in printed
    assert f"Checkpoints:  written to {out / 'checkpoints'}" in printed


@pytest.mark.slow
def test_fit_resolves_the_batch_size_and_backbone_the_library_resolves(images, tmp_path):
    from napari_tsimcne.devices import CPU_BACKBONE

    many = np.concatenate([images] * 5)[:300]  # the default batch is 32 of 300 images on a CPU
    np.save(tmp_path / "images.npy", many)
    assert main(["fit", str(tmp_path / "images.npy"), "--out", str(tmp_path / "out"),
                 "--epochs", "1", "--device", "cpu", "--precision", "fp32",
                 "--checkpoint-every", "0", "--quiet"]) == 0
    from_cli = TSimCNEModel.load(tmp_path / "out" / "model.pt")
    from_library = TSimCNE(epochs=(1,), device="cpu", precision="fp32",
                           random_state=0).fit(many)
    assert (from_cli.backbone, from_cli.batch_size, from_cli.image_shape) == (
        from_library.backbone_, from_library.batch_size_, from_library.image_shape_) == (
        CPU_BACKBONE, 32, (16, 16, 1))
    np.testing.assert_array_equal(from_cli.embedding, from_library.embedding_)  # the same run


@pytest.mark.slow
def test_fit_prints_its_settings_and_the_estimated_time(stack, tmp_path, capsys):
    np.save(tmp_path / "images.npy", stack)
    assert main(["fit", str(tmp_path / "images.npy"), "--out", str(tmp_path / "out"),
                 *TINY_TRAINING[:-1]]) == 0
    err = capsys.readouterr().err
    assert re.search(r"Training on 40 images \(16×16 px, 1 channel\(s\)\) on cpu: resnet10-w8, "
                     r"batch size 16, augmentation microscopy, seed 0", err)
    assert re.search(r"Estimated time: about \d+ s", err)
    assert "left in all" in err


def write_text(path: Path) -> Path:
    path.write_text("this is not an image\n")
    return path


def save_npy(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


@pytest.mark.slow
def test_fit_writes_checkpoints_and_resume_continues_to_the_same_map(stack, tmp_path):
    np.save(tmp_path / "images.npy", stack)
    training = [*TINY_TRAINING[:1], "3", "1", "2", *TINY_TRAINING[4:], "--checkpoint-every", "1"]
    assert main(["fit", str(tmp_path / "images.npy"), "--out", str(tmp_path / "out"),
                 *training]) == 0
    uninterrupted = np.load(tmp_path / "out" / "embedding.npz")["embedding"]
    checkpoints = sorted((tmp_path / "out" / "checkpoints").iterdir())
    assert [p.name for p in checkpoints] == ["checkpoint-2-00002.pt", "checkpoint-3-00001.pt"]
    checkpoints[-1].unlink()  # as if the run had died in the final readout
    assert main(["fit", str(tmp_path / "images.npy"), "--out", str(tmp_path / "out"),
                 *training, "--resume"]) == 0
    resumed = np.load(tmp_path / "out" / "embedding.npz")["embedding"]
    np.testing.assert_array_equal(resumed, uninterrupted)


def test_resume_without_checkpoints_warns_and_trains_from_the_start(stack, tmp_path):
    np.save(tmp_path / "images.npy", stack)
    with pytest.warns(UserWarning) as caught:
        assert main(["fit", str(tmp_path / "images.npy"), "--out", str(tmp_path / "out"),
                     *TINY_TRAINING, "--resume"]) == 0
    assert [str(w.message) for w in caught] == [
        f"No checkpoint in {tmp_path / 'out' / 'checkpoints'}; training from the start."]
    assert (tmp_path / "out" / "model.pt").is_file()


def test_resume_with_other_options_is_refused_with_the_reason(stack, tmp_path, capsys):
    np.save(tmp_path / "images.npy", stack)
    out = ["--out", str(tmp_path / "out")]
    assert main(["fit", str(tmp_path / "images.npy"), *out, *TINY_TRAINING]) == 0
    other = [*TINY_TRAINING[:5], "8", *TINY_TRAINING[6:], "--resume"]
    assert main(["fit", str(tmp_path / "images.npy"), *out, *other]) == 2
    assert "different run (batch_size: 16 in the checkpoint, 8 now)" in capsys.readouterr().err


def test_diverged_training_is_one_error_line_not_a_traceback(stack, tmp_path, capsys):
    np.save(tmp_path / "images.npy", stack)
    assert main(["fit", str(tmp_path / "images.npy"), "--out", str(tmp_path / "out"),
                 *TINY_TRAINING, "--lr", "1e30"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("napari-tsimcne: error:") and "Traceback" not in err


def test_one_image_gets_the_real_error_without_a_batch_note(tmp_path, capsys):
    np.save(tmp_path / "one.npy", np.zeros((1, 16, 16), np.uint8))
    assert main(["fit", str(tmp_path / "one.npy"), "--out", str(tmp_path / "out"),
                 *TINY_TRAINING]) == 2
    captured = capsys.readouterr()
    assert "batch size" not in captured.out
    assert "at least 2" in captured.err


def test_ctrl_c_during_fit_says_how_to_resume(stack, tmp_path, capsys, monkeypatch):
    np.save(tmp_path / "images.npy", stack)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(TSimCNE, "fit_transform", interrupted)
    assert main(["fit", str(tmp_path / "images.npy"), "--out", str(tmp_path / "out"),
                 *TINY_TRAINING]) == 130
    err = capsys.readouterr().err
    assert f"the same command with --resume continues from the newest checkpoint in " \
           f"{tmp_path / 'out' / 'checkpoints'}" in err


def test_a_crafted_model_file_is_refused_without_advice_to_trust_it(tmp_path, capsys):
    import collections
    import os

    import torch

    class Crafted:
        def __reduce__(self):
            return (os.getcwd, ())

    torch.save({"format": "napari-tsimcne", "x": collections.OrderedDict(a=Crafted())},
               tmp_path / "model.pt")
    assert main(["info", str(tmp_path / "model.pt")]) == 2
    err = capsys.readouterr().err
    assert "refused without being run" in err
    assert "weights_only" not in err


# --------------------------------------------------------------------------
# Layouts and bit depths


@pytest.mark.slow
def test_a_tiff_is_read_by_its_axes_metadata_and_axes_reads_it_otherwise(stack, tmp_path,
                                                                         capsys):
    # 20 time points of 2 planes: 40 images, or with --axes TCYX 20 images of 2 channels.
    tifffile.imwrite(tmp_path / "tz.tif", stack.reshape(20, 2, 16, 16), imagej=True,
                     metadata={"axes": "TZYX"})
    assert main(["fit", str(tmp_path / "tz.tif"), "--out", str(tmp_path / "planes"),
                 *TINY_TRAINING]) == 0
    assert ("Note: Reading tz.tif as TZYX, from its TIFF metadata (TZYX): 40 images of "
            "16×16 px.") in capsys.readouterr().out
    model = TSimCNE.load(tmp_path / "planes" / "model.pt")
    assert (model.image_shape_, model.axes, len(model.embedding_)) == ((16, 16, 1), "TZYX", 40)

    assert main(["fit", str(tmp_path / "tz.tif"), "--out", str(tmp_path / "channels"),
                 *TINY_TRAINING, "--axes", "tcyx"]) == 0
    model = TSimCNE.load(tmp_path / "channels" / "model.pt")
    assert (model.image_shape_, model.axes, len(model.embedding_)) == ((16, 16, 2), "TCYX", 20)


@pytest.mark.parametrize("write", [np.save, tifffile.imwrite], ids=[".npy", "TIFF"])
def test_an_ambiguous_stack_is_refused_naming_the_file_and_the_axes_to_choose(
        stack, tmp_path, capsys, write):
    path = tmp_path / ("stack.npy" if write is np.save else "stack.tif")
    write(path, np.stack([stack, 255 - stack], axis=1))  # (40, 2, 16, 16): channels first?
    assert main(["fit", str(path), "--out", str(tmp_path / "out"), *TINY_TRAINING]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"napari-tsimcne: error: {path} has shape (40, 2, 16, 16)")
    assert ("--axes NCYX (channels first: 40 images of 16×16 px with 2 channels), or "
            "--axes NZYX (every plane an image: 80 images of 16×16 px)") in err
    assert "X has" not in err and "np." not in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_axes_chosen_for_fit_are_the_model_s_and_transform_reads_by_them(stack, tmp_path,
                                                                         capsys):
    np.save(tmp_path / "stack.npy", np.stack([stack, 255 - stack], axis=1))
    assert main(["fit", str(tmp_path / "stack.npy"), "--out", str(tmp_path / "out"),
                 *TINY_TRAINING, "--axes", "NCYX"]) == 0
    model = TSimCNE.load(tmp_path / "out" / "model.pt")
    assert (model.axes, model.image_shape_) == ("NCYX", (16, 16, 2))
    capsys.readouterr()
    assert main(["transform", str(tmp_path / "out" / "model.pt"), str(tmp_path / "stack.npy"),
                 "--out", str(tmp_path / "new")]) == 0
    assert ("Reading stack.npy as NCYX, from the layout the model was trained on: 40 images "
            "of 16×16 px with 2 channels") in capsys.readouterr().out
    with np.load(tmp_path / "new" / "embedding.npz") as saved:
        np.testing.assert_allclose(saved["embedding"], model.embedding_, atol=1e-5)


def test_a_folder_of_channels_first_files_is_refused_and_read_with_axes_cyx(tmp_path, capsys):
    from napari_tsimcne.files import read_images

    folder = tmp_path / "images"
    folder.mkdir()
    images = np.random.default_rng(0).integers(0, 256, (3, 6, 16, 16), dtype=np.uint8)
    for index, image in enumerate(images):
        tifffile.imwrite(folder / f"cell{index}.tif", image, metadata=None)
    assert main(["fit", str(folder), "--out", str(tmp_path / "out"), *TINY_TRAINING]) == 2
    err = capsys.readouterr().err
    assert (f"{folder / 'cell0.tif'} has shape (6, 16, 16): its last axis (16) is too long "
            "to be the channels") in err and "pass --axes CYX" in err
    read = read_images(folder, axes="CYX")
    np.testing.assert_array_equal(np.stack(read.images), np.moveaxis(images, 1, -1))
    # Files that record their axes (ImageJ's CYX) need no --axes.
    recorded = tmp_path / "recorded"
    recorded.mkdir()
    for index, image in enumerate(images[:, :3]):
        tifffile.imwrite(recorded / f"cell{index}.tif", image, imagej=True,
                         metadata={"axes": "CYX"})
    read = read_images(recorded)
    np.testing.assert_array_equal(np.stack(read.images), np.moveaxis(images[:, :3], 1, -1))


def test_a_folder_mixing_8_and_16_bit_files_is_refused_naming_two_files(stack, tmp_path,
                                                                        capsys):
    # One intensity range from the 16-bit files would make the 8-bit images black.
    folder = tmp_path / "images"
    folder.mkdir()
    for index, image in enumerate(stack[:20]):
        Image.fromarray(image).save(folder / f"a{index:02d}.png")
    for index, image in enumerate(stack[20:]):
        tifffile.imwrite(folder / f"b{index:02d}.tif", image.astype(np.uint16) * 16)
    assert main(["fit", str(folder), "--out", str(tmp_path / "out"), *TINY_TRAINING]) == 2
    err = capsys.readouterr().err
    assert (f"The files of {folder} mix intensity scales: a00.png holds 8-bit integers "
            "(uint8) but b00.tif holds 16-bit integers (uint16).") in err
    assert "Save them with one bit depth" in err


def test_training_too_large_for_memory_is_one_error_line_naming_the_option(stack, tmp_path,
                                                                           capsys, monkeypatch):
    from napari_tsimcne import devices

    monkeypatch.setattr(devices, "free_memory", lambda device: 2**30)
    np.save(tmp_path / "images.npy", stack)
    assert main(["fit", str(tmp_path / "images.npy"), "--out", str(tmp_path / "out"),
                 *TINY_TRAINING, "--image-size", "1024"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("napari-tsimcne: error: Training resnet10-w8 on batches of 16 "
                          "images of 1024×1024 px needs about ")
    assert re.search(r"only 1\.0 GiB are free on cpu\. Train on smaller images, e\.g\. "
                     r"image_size=(\d+) \(--image-size \1\)", err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_negative_checkpoint_interval_is_refused_before_anything_is_written(stack, tmp_path,
                                                                               capsys):
    np.save(tmp_path / "images.npy", stack)
    assert main(["fit", str(tmp_path / "images.npy"), "--out", str(tmp_path / "out"),
                 *TINY_TRAINING, "--checkpoint-every", "-1"]) == 2
    assert "--checkpoint-every: expected a whole number >= 0, got '-1'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
