"""User-facing errors: one line that names the file or key and the fix; the CLI prints them without a traceback."""

from __future__ import annotations


class MerError(Exception):
    """A mistake in the user's input (path, layout, config, checkpoint) that the message explains how to fix."""


class ConfigError(MerError):
    """A config key, value or override that is unknown or has the wrong type."""


class DataError(MerError):
    """A dataset root, layout, label file or image that cannot be read as expected."""
