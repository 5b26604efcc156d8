"""The package as a user installs it: the core works without napari or Qt."""

from __future__ import annotations

import subprocess
import sys

CORE_MODULES = ["napari_tsimcne", "napari_tsimcne.cli", "napari_tsimcne.explore",
                "napari_tsimcne.crops", "napari_tsimcne.session", "napari_tsimcne.synthetic"]


def test_core_imports_and_trains_with_napari_and_qt_unavailable():
    # A None entry in sys.modules makes `import name` raise ImportError, as if
    # the package were not installed.
    script = f"""
import sys
for name in ["napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "vispy"]:
    sys.modules[name] = None
import importlib
for module in {CORE_MODULES!r}:
    importlib.import_module(module)
import numpy as np
from napari_tsimcne import TSimCNE
images = np.random.default_rng(0).integers(0, 255, (32, 16, 16), dtype=np.uint8)
embedding = TSimCNE(epochs=(1,), batch_size=16, backbone="resnet10-w8", hidden_dim=32,
                    device="cpu", random_state=0).fit_transform(images)
print(embedding.shape)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={"OMP_NUM_THREADS": "1", "PATH": ""}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(32, 2)"

