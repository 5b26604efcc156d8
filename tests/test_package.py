"""The package as a user installs it: a core without napari, and a plugin napari can load."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest

import napari_tsimcne
import napari_tsimcne.plugin

#: napari and Qt, which only the plugin's widgets need.
NAPARI_AND_QT = ["napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "vispy"]
#: What the core must not need: napari, Qt and the plugin's other dependencies.
PLUGIN_ONLY = [*NAPARI_AND_QT, "pandas", "skimage"]
#: Every module of the core: the package outside its plugin.
CORE_MODULES = ["napari_tsimcne"] + [
    module.name for module in pkgutil.walk_packages(napari_tsimcne.__path__, "napari_tsimcne.")
    if not module.name.startswith("napari_tsimcne.plugin")
]
#: The plugin's computations, which need neither napari nor Qt.
PLUGIN_COMPUTATIONS = [f"napari_tsimcne.plugin.{name}" for name in (
    "colors", "controller", "geometry", "layer_layout", "map_table", "montage", "outliers",
    "training_choices")]
PLUGIN_SOURCES = Path(napari_tsimcne.plugin.__file__).parent


def run_without(packages: list[str], script: str) -> subprocess.CompletedProcess:
    """Run ``script`` in a new Python in which ``packages`` cannot be imported."""
    # A None entry in sys.modules makes `import name` raise ImportError, as if
    # the package were not installed.
    preamble = f"import sys\nfor name in {packages!r}:\n    sys.modules[name] = None\n"
    return subprocess.run([sys.executable, "-c", preamble + script], capture_output=True,
                          text=True, env={"OMP_NUM_THREADS": "1", "PATH": ""}, timeout=300)


@pytest.mark.slow
def test_core_imports_and_trains_without_the_plugin_s_dependencies():
    result = run_without(PLUGIN_ONLY, f"""
import importlib
for module in {CORE_MODULES!r}:
    importlib.import_module(module)
assert not [name for name in sys.modules if name.startswith("napari_tsimcne.plugin")]
import numpy as np
from napari_tsimcne import TSimCNE
images = np.random.default_rng(0).integers(0, 255, (32, 16, 16), dtype=np.uint8)
embedding = TSimCNE(epochs=(1,), batch_size=16, backbone="resnet10-w8", hidden_dim=32,
                    device="cpu", random_state=0).fit_transform(images)
print(embedding.shape)
""")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(32, 2)"
    assert "napari_tsimcne.cli" in CORE_MODULES and "napari_tsimcne.synthetic" in CORE_MODULES


@pytest.mark.slow
def test_the_plugin_s_computations_need_neither_napari_nor_qt():
    result = run_without(NAPARI_AND_QT, f"""
import importlib
for module in {PLUGIN_COMPUTATIONS!r}:
    importlib.import_module(module)
""")
    assert result.returncode == 0, result.stderr


def test_the_plugin_uses_only_napari_s_public_modules():
    private = []
    for path in PLUGIN_SOURCES.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                       else [node.module] if isinstance(node, ast.ImportFrom) and node.module
                       else [])
            private += [f"{path.name}: {module}" for module in modules
                        if module.split(".")[0] == "napari"
                        and any(part.startswith("_") for part in module.split("."))]
    assert private == []


def test_the_repository_s_manifest_is_the_package_s():
    root = Path(__file__).parents[1] / "napari.yaml"
    packaged = files("napari_tsimcne.plugin").joinpath("napari.yaml")
    assert root.read_bytes() == packaged.read_bytes(), (
        "napari.yaml at the repository's root differs from src/napari_tsimcne/plugin/napari.yaml;"
        " copy the package's over it")


def test_plugin_is_listed_and_valid():
    import npe2

    manifest = npe2.PluginManifest.from_distribution("napari-tsimcne")
    manifest.validate_imports()  # every python_name resolves
    commands = {command.id: command.python_name for command in manifest.contributions.commands}
    assert all(name.startswith("napari_tsimcne.plugin.") for name in commands.values())
    widgets = {w.display_name for w in manifest.contributions.widgets}
    assert widgets == {"Train map", "Explore map"}
    assert {s.key for s in manifest.contributions.sample_data} == {
        "cells", "cell_field", "photo_patches", "shapes"}
    plugin_manager = npe2.PluginManager.instance()
    plugin_manager.discover()
    assert plugin_manager.get_manifest("napari-tsimcne").display_name == "t-SimCNE image map"
