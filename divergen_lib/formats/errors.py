"""The one exception type for malformed files, so callers can report a single clear line."""

from ..errors import InputError


class FormatError(InputError):
    """A file (or in-memory document) does not follow the format it claims; the message names it."""
