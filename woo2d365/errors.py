"""One exception hierarchy for woo2d365, and the one table of what each error means.

Every error the tool raises on purpose derives from :class:`Woo2D365Error`. :data:`OUTCOMES` says,
for each, the exit code the CLI turns it into, the outcome recorded for the run, and the effect on
an order it happened to (see :func:`outcome_of`); anything else is a bug (exit 70, outcome
``error``). Messages are one readable line and never contain secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum


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

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    @property
    def exit_code(self) -> ExitCode:
        """The exit code of this error (:data:`OUTCOMES`)."""
        return outcome_of(self).exit_code


class ConfigError(Woo2D365Error):
    """A setting is missing or invalid; the message names the key and the file."""


class UsageError(Woo2D365Error):
    """A command was called with arguments it cannot act on."""


class StoreUnavailable(Woo2D365Error):
    """The state store cannot be reached or answered with an operational error."""


class LockHeld(Woo2D365Error):
    """Another run holds the run lock."""


class RemoteError(Woo2D365Error):
    """A remote system (shop or Dynamics) answered or failed in a way the run must react to.

    ``retryable`` tells whether the same request may succeed later (429, 5xx, timeouts);
    ``status`` is the HTTP status when there was one, ``code`` the system's own error code.
    """

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


class DynamicsUntrusted(DynamicsUnreachable):
    """Dynamics' (or its identity provider's) TLS certificate is not trusted: not retryable."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.retryable = False  # a certificate does not fix itself


class DocumentRefused(DynamicsError):
    """The ERP refused the document for a reason that sending it again will not change."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message, status=status, code=code, retryable=False)


class DocumentInDoubt(DynamicsError):
    """A create request got no usable answer: it may or may not have been processed."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message, status=status, code=code, retryable=True)


class WaitingForDynamics(DynamicsError):
    """A create sent earlier (e.g. of the order's customer) may still be processed by Dynamics:
    the order waits, without an attempt counted against it, until the request limit has passed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class OrderDataError(Woo2D365Error):
    """An order's own data cannot be sent as it is; the order is held or failed, never the run."""


class ClaimLost(Woo2D365Error):
    """This process no longer holds the claim on an order: it must not send or settle it."""


class RunOutcome(StrEnum):
    """The outcome recorded for a run (``status``, ``status --check``, metrics)."""

    OK = "ok"
    ATTENTION = "attention"  # done, but orders of the run were held or failed
    UNREACHABLE = "unreachable"  # a system was away; nothing lost, run again later
    ERROR = "error"  # a bug, a configuration a person must fix, or a lost run lock
    INTERRUPTED = "interrupted"  # Ctrl-C


class OrderEffect(StrEnum):
    """What an error means for the order it happened to (push)."""

    NONE = "none"  # not about one order
    HELD = "held"  # the order's own data: a person fixes it in the shop or the SKU map
    FAILED = "failed"  # Dynamics refused it: a person fixes the cause, then `retry`
    RETRY = "retry"  # not processed: ready again; failed after orders.max_attempts
    WAIT = "wait"  # an earlier create may still run: ready again, no attempt counted
    IN_DOUBT = "in doubt"  # may exist now: stays pushing, looked up before any re-send
    STOP = "stop"  # a system or its credentials: ready again, no attempt; the run stops claiming
    LOST = "lost"  # another process holds the order: nothing is written


@dataclass(frozen=True)
class Outcome:
    """One row of :data:`OUTCOMES`."""

    exit_code: ExitCode
    run_outcome: RunOutcome
    order_effect: OrderEffect


_E, _R, _O = ExitCode, RunOutcome, OrderEffect

OUTCOMES: tuple[tuple[type[BaseException], bool | None, Outcome], ...] = (
    # error class                  retryable  exit code        run outcome     order effect
    (KeyboardInterrupt,            None, Outcome(_E.INTERRUPTED, _R.INTERRUPTED, _O.NONE)),
    (ConfigError,                  None, Outcome(_E.USAGE,       _R.ERROR,       _O.NONE)),
    (UsageError,                   None, Outcome(_E.USAGE,       _R.ERROR,       _O.NONE)),
    (LockHeld,                     None, Outcome(_E.LOCKED,      _R.ERROR,       _O.NONE)),
    (StoreUnavailable,             None, Outcome(_E.UNREACHABLE, _R.UNREACHABLE, _O.NONE)),
    (ClaimLost,                    None, Outcome(_E.UNREACHABLE, _R.ERROR,       _O.LOST)),
    (OrderDataError,               None, Outcome(_E.ATTENTION,   _R.ATTENTION,   _O.HELD)),
    (AuthenticationError,          None, Outcome(_E.USAGE,       _R.ERROR,       _O.STOP)),
    (Unreachable,                  None, Outcome(_E.UNREACHABLE, _R.UNREACHABLE, _O.STOP)),
    (WaitingForDynamics,           None, Outcome(_E.UNREACHABLE, _R.UNREACHABLE, _O.WAIT)),
    (DocumentInDoubt,              None, Outcome(_E.UNREACHABLE, _R.UNREACHABLE, _O.IN_DOUBT)),
    (DocumentRefused,              None, Outcome(_E.ATTENTION,   _R.ATTENTION,   _O.FAILED)),
    (RemoteError,                  True, Outcome(_E.UNREACHABLE, _R.UNREACHABLE, _O.RETRY)),
    (RemoteError,                  False, Outcome(_E.USAGE,      _R.ERROR,       _O.FAILED)),
    (Woo2D365Error,                None, Outcome(_E.USAGE,       _R.ERROR,       _O.NONE)),
    (BaseException,                None, Outcome(_E.INTERNAL,    _R.ERROR,       _O.NONE)),
)  # fmt: skip
"""What each error means, most specific first: the first row whose class matches (and, where
given, whose ``retryable`` matches) applies. Anything not raised on purpose is a bug (exit 70)."""


def outcome_of(exc: BaseException) -> Outcome:
    """The row of :data:`OUTCOMES` for this error."""
    retryable = getattr(exc, "retryable", None)
    for kind, when_retryable, outcome in OUTCOMES:
        if isinstance(exc, kind) and (when_retryable is None or when_retryable == retryable):
            return outcome
    raise AssertionError("OUTCOMES ends with BaseException")  # pragma: no cover


RUN_OUTCOME_OF_EXIT: dict[ExitCode, RunOutcome] = {
    ExitCode.OK: RunOutcome.OK,
    ExitCode.ATTENTION: RunOutcome.ATTENTION,
    ExitCode.UNREACHABLE: RunOutcome.UNREACHABLE,
    ExitCode.USAGE: RunOutcome.ERROR,
    ExitCode.LOCKED: RunOutcome.ERROR,
    ExitCode.INTERNAL: RunOutcome.ERROR,
    ExitCode.INTERRUPTED: RunOutcome.INTERRUPTED,
}
"""The run outcome of a command that ended with this exit code without an exception."""
