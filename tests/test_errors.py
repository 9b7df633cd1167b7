"""The one table of what an error means: exit code, run outcome, effect on the order."""

from __future__ import annotations

import pytest

from woo2d365.errors import (
    ClaimLost,
    ConfigError,
    DocumentInDoubt,
    DocumentRefused,
    DynamicsAuthenticationError,
    DynamicsError,
    DynamicsUnreachable,
    DynamicsUntrusted,
    ExitCode,
    LockHeld,
    OrderDataError,
    OrderEffect,
    RunOutcome,
    ShopError,
    StoreUnavailable,
    WaitingForDynamics,
    outcome_of,
)


@pytest.mark.parametrize(
    ("error", "exit_code", "run_outcome", "effect"),
    [
        (ConfigError("x"), ExitCode.USAGE, RunOutcome.ERROR, OrderEffect.NONE),
        (LockHeld("x"), ExitCode.LOCKED, RunOutcome.ERROR, OrderEffect.NONE),
        (StoreUnavailable("x"), ExitCode.UNREACHABLE, RunOutcome.UNREACHABLE, OrderEffect.NONE),
        (OrderDataError("x"), ExitCode.ATTENTION, RunOutcome.ATTENTION, OrderEffect.HELD),
        (DocumentRefused("x"), ExitCode.ATTENTION, RunOutcome.ATTENTION, OrderEffect.FAILED),
        (DocumentInDoubt("x"), ExitCode.UNREACHABLE, RunOutcome.UNREACHABLE, OrderEffect.IN_DOUBT),
        (WaitingForDynamics("x"), ExitCode.UNREACHABLE, RunOutcome.UNREACHABLE, OrderEffect.WAIT),
        (DynamicsUnreachable("x"), ExitCode.UNREACHABLE, RunOutcome.UNREACHABLE, OrderEffect.STOP),
        (DynamicsUntrusted("x"), ExitCode.UNREACHABLE, RunOutcome.UNREACHABLE, OrderEffect.STOP),
        (DynamicsAuthenticationError("x"), ExitCode.USAGE, RunOutcome.ERROR, OrderEffect.STOP),
        (
            DynamicsError("x", retryable=True),
            ExitCode.UNREACHABLE,
            RunOutcome.UNREACHABLE,
            OrderEffect.RETRY,
        ),
        (DynamicsError("x"), ExitCode.USAGE, RunOutcome.ERROR, OrderEffect.FAILED),
        (ShopError("x", status=404), ExitCode.USAGE, RunOutcome.ERROR, OrderEffect.FAILED),
        (ClaimLost("x"), ExitCode.UNREACHABLE, RunOutcome.ERROR, OrderEffect.LOST),
        (RuntimeError("a bug"), ExitCode.INTERNAL, RunOutcome.ERROR, OrderEffect.NONE),
        (KeyboardInterrupt(), ExitCode.INTERRUPTED, RunOutcome.INTERRUPTED, OrderEffect.NONE),
    ],
)
def test_every_error_has_one_exit_code_run_outcome_and_order_effect(
    error: BaseException, exit_code: ExitCode, run_outcome: RunOutcome, effect: OrderEffect
) -> None:
    outcome = outcome_of(error)
    assert (outcome.exit_code, outcome.run_outcome, outcome.order_effect) == (
        exit_code,
        run_outcome,
        effect,
    )


def test_an_untrusted_certificate_is_never_retried_and_its_flag_is_not_changed_later() -> None:
    error = DynamicsUntrusted("certificate not trusted")
    assert error.retryable is False and isinstance(error, DynamicsUnreachable)
