"""Exceptions and warnings shared across the package."""


class SsxWarning(UserWarning):
    """A warning from ssxwidgets; it always says what to do instead."""


class Cancelled(Exception):
    """Raised inside a computation when its job was cancelled."""
