"""Errors a user can cause. The CLI prints their message on one line and exits 2.

Every message should say what to do next, not only what went wrong.
"""


class MiauditError(Exception):
    """Base class of every error caused by user input (bad names, files, shapes, options)."""


class UnknownNameError(MiauditError):
    """A data set, model, attack or other registered name that does not exist."""


class DataError(MiauditError):
    """A data file that is missing, corrupt, or has the wrong shape or checksum."""


class DataMissingError(DataError):
    """A data file is absent and could not be downloaded (offline or unreachable)."""


class ChecksumError(DataError):
    """A data file whose sha256 does not match the published one."""


class ConfigError(MiauditError):
    """An option or configuration value that is invalid."""


class InputError(MiauditError):
    """Arrays handed to the library that have the wrong shape, dtype or NaN values."""


class CacheError(MiauditError):
    """A cache entry that is unreadable or does not match what it claims to hold."""
