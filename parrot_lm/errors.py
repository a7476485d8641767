"""User-facing errors: the message is one sentence saying what was wrong and what to do."""


class ParrotError(Exception):
    """Bad input or config. Entry points print the message alone and exit non-zero."""


class ConfigError(ParrotError):
    pass


class DataError(ParrotError):
    pass
