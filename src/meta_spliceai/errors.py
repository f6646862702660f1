"""User-facing errors: one clear line saying what is wrong, where, and how to fix it."""

from __future__ import annotations


class MetaSpliceAIError(Exception):
    """Bad input or an unmet precondition. The CLI prints ``str(err)`` on one line and exits 2."""

    exit_code = 2

    def __str__(self) -> str:  # keep messages on one line
        return " ".join(str(self.args[0]).split()) if self.args else self.__class__.__name__


class InputError(MetaSpliceAIError):
    """A file or flag given by the user is missing, unreadable or malformed."""


class ConfigMismatchError(MetaSpliceAIError):
    """An output folder was made with another configuration, or a store by another model."""


class LockedError(MetaSpliceAIError):
    """Another process holds the output folder's lock."""
