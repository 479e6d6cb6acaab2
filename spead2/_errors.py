"""Exceptions of the public API."""


class Stopped(RuntimeError):
    """The stream has stopped and every queued heap has been returned."""


class Empty(RuntimeError):
    """No heap is available right now (``get_nowait``)."""


class Full(RuntimeError):
    """A bounded queue is full."""
