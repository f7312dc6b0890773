"""Domain exceptions. HTTP codes are chosen in ``api/``, exit codes in ``cli/``, nowhere else."""

from __future__ import annotations

from collections.abc import Sequence


def first_of(items: Sequence[str], n: int = 10, sep: str = ", ") -> str:
    """The first ``n`` items for a message, and how many more: "a, b, c and 7 more"."""
    return sep.join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


class CongruenceError(Exception):
    """Base class for errors a user can act on; the message names what and where.

    ``field``: the parameter the error is about, when there is one, named as the library and the
    API name it (``like_weight``); the message then follows the field's name ("must be a number
    from 0 to 10, got -1"). Each face spells the field its own way (``spelt``): the command line
    as its option (``--like-weight``), the API as the parameter.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def spelt(self, name: str | None) -> str:
        """The message with the field written as ``name`` (the field itself when None)."""
        name = name or self.field
        return f"{name} {self.message}" if name else self.message

    def __str__(self) -> str:
        return self.spelt(None)


class NotFound(CongruenceError):
    """An id that the store does not know (brand, influencer, post, model)."""


class InvalidInput(CongruenceError, ValueError):
    """Input that was refused: a bad image, a bad filter, a wrong-shaped vector."""


class StoreUnavailable(CongruenceError):
    """The database cannot be reached."""


class ModelMismatch(CongruenceError):
    """Vectors of one model meeting vectors of another, or a wrong vector size."""


class Conflict(CongruenceError):
    """A write that collides with what is stored: a name already taken, or a stale write (the row
    changed since the caller read it). ``current``: what is stored now, for the caller to show."""

    def __init__(self, message: str, *, field: str | None = None, current: object = None) -> None:
        super().__init__(message, field=field)
        self.current = current


class Busy(CongruenceError):
    """A heavy job is already running and this one would have to wait."""


class TooLarge(InvalidInput):
    """Input over a size limit: bytes, pixels, number of items."""


class UnsupportedMedia(InvalidInput):
    """A file that is not an image of a supported format."""
