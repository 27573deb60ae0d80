"""Domain errors. Each message is a sentence a user may read: what went wrong and what to do."""


class DomainError(Exception):
    """Base of every error a page may show as it is."""

    def __str__(self) -> str:
        return self.args[0] if self.args else self.__class__.__name__


class ValidationError(DomainError):
    """Input that cannot be accepted; the message names the field and what to fix."""


class NotFound(DomainError):
    pass


class PermissionDenied(DomainError):
    pass


class InvalidTransition(DomainError):
    """An appointment or request cannot move the way asked; the message says what is allowed."""


class Conflict(DomainError):
    """Someone else got there first, or a slot is taken; the message says who or what."""


class AuthenticationFailed(DomainError):
    pass


class ConfigurationError(DomainError):
    """A setting is malformed; the message names the setting."""


class DatabaseUnavailable(DomainError):
    pass


class LinkInvalid(DomainError):
    """A patient link is wrong, expired or used. The message reveals nothing more."""

    def __init__(self) -> None:
        super().__init__(
            "This link is not valid any more. Please contact the practice for a new one."
        )
