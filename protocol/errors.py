"""The protocol package's one exception type."""


class ProtocolError(ValueError):
    """A payload or topic that does not follow protocol v1; the message says what and where."""
