"""Errors a user can cause and fix: the CLI prints them as one line, never a traceback."""


class WordbrushError(ValueError):
    """Bad input: a config, a file, a prompt, an argument. The message says what is wrong."""


class ConfigError(WordbrushError):
    """A config file or dict that cannot be read or does not match the dataclass it is for."""


class CheckpointError(WordbrushError):
    """A saved model folder that is missing, corrupt, or does not match the model it is loaded into."""
