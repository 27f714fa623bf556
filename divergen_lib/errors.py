"""The base of every error caused by user input rather than by a bug."""


class InputError(ValueError):
    """Bad params, files, prompts or models; the message is one line naming the file, key or id at fault."""
