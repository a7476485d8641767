"""Every user-facing error: the message is one sentence saying what was wrong and what to do.

Entry points (`parrot_lm.core.cli.exit_on_user_error`) print the message alone and exit 2.
"""


class ParrotError(Exception):
    """Bad input, config or file. Entry points print the message alone and exit non-zero."""


class ConfigError(ParrotError):
    """A config value or command-line argument is wrong."""


class SamplingError(ConfigError):
    """A sampling setting out of range; `field` names it (the server reports it as `param`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class DataError(ParrotError):
    """A corpus, prepared data dir or tokenizer file is missing, malformed or inconsistent."""


class CheckpointError(ParrotError):
    """A checkpoint is missing, unreadable, foreign, or does not fit the run."""


class ExportError(ParrotError):
    """An export cannot be written or read back."""


class ReportError(ParrotError):
    """A sweep report's inputs or output place are wrong."""


class StorageError(ParrotError):
    """A file or directory cannot be written or read (no space, read-only, permission)."""
