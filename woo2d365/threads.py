"""How soon a thread whose answer has arrived runs again, set once at start-up.

CPython lets the thread holding the interpreter run up to the *switch interval* (5 ms by
default) before a waiting thread gets it. In a ``sync`` the push workers mostly wait on sockets
while pull and validate map orders and the write-back builds notes in threads of their own: a
worker whose Dynamics answer has arrived then waits up to 5 ms before it can settle the order
and hand its request slot on, at 50 ms per request a tenth of a slot. With 1 ms the wait is
shorter and the CPU-bound threads switch a little more often (docs/architecture.md, "The path
of an order"; measured on the 2,000-order, 50 ms benchmark: 0.4-0.8 s less of about 24.5 s,
and the first sales order 0.1-0.4 s sooner).
"""

from __future__ import annotations

import sys

SWITCH_INTERVAL_SECONDS = 0.001


def answer_sooner(seconds: float = SWITCH_INTERVAL_SECONDS) -> None:
    """Let a thread waiting for the interpreter have it after ``seconds`` at most."""
    sys.setswitchinterval(seconds)
