"""Exceptions and warnings shared across the package."""


class SsxWarning(UserWarning):
    """A warning from ssxwidgets; it always says what to do instead."""


class Cancelled(Exception):  # noqa: N818 - reads as an event, like StopIteration
    """Raised inside a computation when its job was cancelled."""
