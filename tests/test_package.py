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



def _wait_policy_after(imports: str, environment: dict) -> str:
    script = f"{imports}\nimport os\nprint(os.environ.get('OMP_WAIT_POLICY'))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={"PATH": "", **environment}, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_importing_the_package_first_lets_openmp_threads_sleep_unless_told_otherwise():
    # Spinning waits collapse training beside other busy processes
    # (benchmarks/contention.py); the policy counts only before torch loads OpenMP.
    assert _wait_policy_after("import napari_tsimcne", {}) == "PASSIVE"
    assert _wait_policy_after("import napari_tsimcne", {"OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
    assert _wait_policy_after("import torch\nimport napari_tsimcne", {}) == "None"
