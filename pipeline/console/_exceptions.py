"""The console's errors, under Vigil's tree::

    VigilError
    └── ConsoleError            the analyst console refused or could not do something
        ├── AccountError        an account or token operation is invalid (unknown user, bad role, empty password)
        └── LoginThrottled      too many failed logins for a user or an address (carries ``retry_after_s``)
"""
from __future__ import annotations

from .._exceptions import VigilError

__all__ = ["ConsoleError", "AccountError", "LoginThrottled"]


class ConsoleError(VigilError):
    """The analyst console refused or could not do something."""


class AccountError(ConsoleError):
    """An account or token operation is invalid."""


class LoginThrottled(ConsoleError):
    """Too many failed logins; try again after ``retry_after_s``."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
