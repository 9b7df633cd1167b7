"""One exception hierarchy for woo2d365 and the exit codes of the public contract.

Every error the tool raises on purpose derives from :class:`Woo2D365Error` and carries the exit
code the CLI turns it into. Messages are one readable line and never contain secrets.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the public contract (README, "Commands")."""

    OK = 0
    ATTENTION = 1  # done, but some orders of this run were held or failed
    USAGE = 2  # usage or configuration error
    UNREACHABLE = 3  # shop, Dynamics or state store could not be reached
    LOCKED = 4  # another run holds the run lock
    INTERNAL = 70  # an unexpected exception: a bug (EX_SOFTWARE of sysexits.h)
    INTERRUPTED = 130


class Woo2D365Error(Exception):
    """Base of every error the tool raises deliberately."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(Woo2D365Error):
    """A setting is missing or invalid; the message names the key and the file."""

    exit_code = ExitCode.USAGE


class UsageError(Woo2D365Error):
    """A command was called with arguments it cannot act on."""

    exit_code = ExitCode.USAGE


class StoreUnavailable(Woo2D365Error):
    """The state store cannot be reached or answered with an operational error."""

    exit_code = ExitCode.UNREACHABLE


class LockHeld(Woo2D365Error):
    """Another run holds the run lock."""

    exit_code = ExitCode.LOCKED


class RemoteError(Woo2D365Error):
    """A remote system (shop or Dynamics) answered or failed in a way the run must react to.

    ``retryable`` tells whether the same request may succeed later (429, 5xx, timeouts);
    ``status`` is the HTTP status when there was one, ``code`` the system's own error code.
    """

    exit_code = ExitCode.UNREACHABLE
    system = "remote"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retryable = retryable


class Unreachable(RemoteError):
    """The system could not be reached at all (connection refused, DNS, TLS, timeout)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message, status=status, code=code, retryable=True)


class AuthenticationError(RemoteError):
    """Credentials were refused; needs a person to fix the configuration."""

    exit_code = ExitCode.USAGE


class ShopError(RemoteError):
    """An error answered by the WooCommerce REST API."""

    system = "shop"


class ShopUnreachable(Unreachable, ShopError):
    """WooCommerce could not be reached."""


class ShopAuthenticationError(AuthenticationError, ShopError):
    """WooCommerce refused the API key."""


class DynamicsError(RemoteError):
    """An error answered by Dynamics 365 (or its identity provider)."""

    system = "dynamics"


class DynamicsUnreachable(Unreachable, DynamicsError):
    """Dynamics 365 or its token endpoint could not be reached."""


class DynamicsAuthenticationError(AuthenticationError, DynamicsError):
    """The identity provider or Dynamics refused the app's credentials."""


class OrderDataError(Woo2D365Error):
    """An order's own data cannot be sent as it is; the order is held or failed, never the run."""

    exit_code = ExitCode.ATTENTION


class ClaimLost(Woo2D365Error):
    """This process no longer holds the claim on an order: it must not send or settle it."""

    exit_code = ExitCode.UNREACHABLE
