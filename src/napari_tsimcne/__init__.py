"""napari-tsimcne: unsupervised 2-D maps of image collections with t-SimCNE.

The core (:class:`TSimCNE` and the modules it is built from) needs neither
napari nor Qt; the napari plugin lives in :mod:`napari_tsimcne._widget`.
"""

import sys

__version__ = "0.1.0"


def _keep_triton_from_clashing_with_llvm() -> None:
    """Mark triton unavailable when another LLVM is already loaded, where it would crash.

    napari's OpenGL canvas on Mesa maps the system's libLLVM; triton, which
    torch imports at its first optimiser step, carries its own LLVM, and
    loading it next to the other one segfaults.  Training never uses triton.
    """
    if "triton" in sys.modules or not sys.platform.startswith("linux"):
        return
    try:
        with open("/proc/self/maps") as maps:
            llvm_loaded = any("libLLVM" in line for line in maps)
    except OSError:
        return
    if llvm_loaded:
        sys.modules["triton"] = None  # makes `import triton` raise ImportError


_keep_triton_from_clashing_with_llvm()

from .callbacks import Callback  # noqa: E402
from .estimator import TSimCNE, TrainingStopped  # noqa: E402

__all__ = ["Callback", "TSimCNE", "TrainingStopped", "__version__"]
