"""The package's one exception type; the CLI turns it into one line and exit status 2."""


class BpjaxError(Exception):
    """Anything the user can fix: bad data, a nonsensical option, a corrupt checkpoint."""


class DataError(BpjaxError):
    """A names file or vocabulary that cannot be used."""


class ConfigError(BpjaxError):
    """An invalid configuration or option."""


class CheckpointError(BpjaxError):
    """A run directory or checkpoint that is missing, corrupt or does not match."""
