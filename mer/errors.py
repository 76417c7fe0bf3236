"""User-facing errors: one line that names the file or key and the fix; the CLI prints them without a traceback."""

from __future__ import annotations


class MerError(Exception):
    """A mistake in the user's input (path, layout, config, checkpoint) that the message explains how to fix."""


class ConfigError(MerError):
    """A config key, value or override that is unknown or has the wrong type."""


class DataError(MerError):
    """A dataset root, layout, label file or image that cannot be read as expected."""


class UnreadableFileError(DataError):
    """A file that is missing, empty or cannot be decoded (image, crop); the message names the file and the problem."""

    def __init__(self, path: object, problem: str, hint: str = "") -> None:
        self.path = str(path)
        self.problem = problem
        self.hint = hint
        super().__init__(f"{path}: {problem}" + (f"; {hint}" if hint else ""))

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:
        """Pickle with the constructor's arguments (errors cross process pools in LOSO and sweeps)."""
        return (type(self), (self.path, self.problem, self.hint))
