"""Domain exceptions. HTTP codes and exit codes are chosen in ``api/`` only."""

from __future__ import annotations

from collections.abc import Sequence


def first_of(items: Sequence[str], n: int = 10, sep: str = ", ") -> str:
    """The first ``n`` items for a message, and how many more: "a, b, c and 7 more"."""
    return sep.join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


class CongruenceError(Exception):
    """Base class for errors a user can act on; the message names what and where."""


class NotFound(CongruenceError):
    """An id that the store does not know (brand, influencer, post, model)."""


class InvalidInput(CongruenceError):
    """Input that was refused: a bad image, a bad filter, a wrong-shaped vector."""


class StoreUnavailable(CongruenceError):
    """The database cannot be reached."""


class ModelMismatch(CongruenceError):
    """Vectors of one model meeting vectors of another, or a wrong vector size."""


class Busy(CongruenceError):
    """A heavy job is already running and this one would have to wait."""


class TooLarge(InvalidInput):
    """Input over a size limit: bytes, pixels, number of items."""


class UnsupportedMedia(InvalidInput):
    """A file that is not an image of a supported format."""
