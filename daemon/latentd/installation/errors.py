"""The model host's error type, importable without loading torch (operator commands start fast)."""


class ModelError(Exception):
    """A model file that cannot be used: the message says what is wrong, in which file, what is allowed."""
