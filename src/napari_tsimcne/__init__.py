"""napari-tsimcne: unsupervised 2-D maps of image collections with t-SimCNE.

The core (:class:`TSimCNE` and the modules it is built from) needs neither
napari nor Qt; the napari plugin lives in :mod:`napari_tsimcne._widget`.
"""

__version__ = "0.1.0"

from .callbacks import Callback  # noqa: E402
from .estimator import TSimCNE, TrainingStopped  # noqa: E402

__all__ = ["Callback", "TSimCNE", "TrainingStopped", "__version__"]
