"""napari-tsimcne: unsupervised 2-D maps of image collections with t-SimCNE.

The core (:class:`TSimCNE` and the modules it is built from) needs neither
napari nor Qt; the napari plugin lives in :mod:`napari_tsimcne.plugin`.
"""

import sys

__version__ = "0.1.0"


def _keep_triton_from_clashing_with_llvm() -> None:
    """Mark triton unavailable when another LLVM is already loaded, where it would crash.

    napari's OpenGL canvas on Mesa maps the system's libLLVM; triton, which
    torch imports at its first optimiser step, carries its own LLVM, and
    loading it next to the other one segfaults.  Only ``compile=True`` on a
    GPU needs triton; in such a process it is refused with a clear message
    (:func:`napari_tsimcne.trainer.check_compile_possible`).
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

__all__ = ["Callback", "TSimCNE", "TSimCNEModel", "TrainingStopped", "__version__"]

#: Public names and the modules that define them, imported on first use:
#: torch takes seconds to load, and the command line's ``--help`` needs none of it.
_LAZY = {"Callback": "callbacks", "TSimCNE": "estimator", "TSimCNEModel": "model",
         "TrainingStopped": "estimator"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])
