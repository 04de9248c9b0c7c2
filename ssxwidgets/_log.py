"""The package's one named logger."""

import logging

logger = logging.getLogger("ssxwidgets")
logger.addHandler(logging.NullHandler())
