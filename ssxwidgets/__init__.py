"""ssxwidgets: interactive widgets that explain TensorFlow models.

Usage::

    import ssxwidgets as ssx
    ssx.explain(model, image)                          # a widget
    exp = ssx.attribute(model, images, method="lime")  # an Explanation
    for partial in ssx.stream(model, image, method="rise"):
        ...
"""

import os

# TensorFlow's C++ INFO lines (oneDNN, absl) would land under the first cell
# that loads a model; warnings and errors still show. A user's setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from . import metrics, targets
from ._errors import Cancelled, SsxWarning
from ._version import __version__
from .api import attribute, explain, stream
from .explanation import Explanation
from .methods import METHOD_NAMES
from .models import ModelAdapter, adapt
from .report import report

__all__ = [
    "METHOD_NAMES",
    "Cancelled",
    "Explanation",
    "ModelAdapter",
    "SsxWarning",
    "__version__",
    "adapt",
    "attribute",
    "explain",
    "metrics",
    "report",
    "stream",
    "targets",
]
