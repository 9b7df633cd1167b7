"""What the CLI's entry point sets before anything else: the malloc arenas limited
(docs/architecture.md, "Memory") and a shorter switch interval between threads (``threads.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from woo2d365.allocator import ARENAS
from woo2d365.threads import SWITCH_INTERVAL_SECONDS

THREADS = 6

# Starts the CLI's entry point ("cli") or not ("bare"), as the first lines of each probe.
START = textwrap.dedent(
    """
    import sys
    if sys.argv[1] == "cli":
        from woo2d365 import cli
        sys.argv = ["woo2d365", "--version"]
        try:
            cli.main()
        except SystemExit:
            pass
    """
)

# Then THREADS threads that each allocate while all are alive, and prints how many arenas
# glibc's malloc_info reports.
PROBE = START + textwrap.dedent(
    f"""
    import ctypes, tempfile, threading
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
    libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
    libc.fclose.argtypes = (ctypes.c_void_p,)
    barrier = threading.Barrier({THREADS} + 1)
    def allocate():
        libc.malloc(4096)
        barrier.wait()
        barrier.wait()
    threads = [threading.Thread(target=allocate) for _ in range({THREADS})]
    for thread in threads:
        thread.start()
    barrier.wait()
    with tempfile.NamedTemporaryFile(suffix=".xml") as info:
        stream = libc.fopen(info.name.encode(), b"w")
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        print(open(info.name).read().count("<heap nr="), flush=True)
    barrier.wait()
    for thread in threads:
        thread.join()
    """
)


def _arenas(start: str, operator_limit: str | None = None) -> int:
    """How many arenas a process has once THREADS threads allocated, with the CLI's start-up
    ("cli") or without ("bare")."""
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    if operator_limit is not None:
        env["MALLOC_ARENA_MAX"] = operator_limit
    done = subprocess.run(
        [sys.executable, "-c", PROBE, start],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(done.stdout.split()[-1])


glibc_only = pytest.mark.skipif(
    not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"), reason="glibc only"
)


@glibc_only
def test_the_entry_point_keeps_every_thread_within_two_malloc_arenas() -> None:
    assert _arenas("bare") > ARENAS  # without it, each allocating thread gets an arena
    assert _arenas("cli") <= ARENAS


@glibc_only
def test_an_operators_malloc_arena_max_wins() -> None:
    assert _arenas("cli", operator_limit="4") == 4


@pytest.mark.parametrize(("start", "expected"), [("cli", SWITCH_INTERVAL_SECONDS), ("bare", 0.005)])
def test_the_entry_point_shortens_the_interpreters_switch_interval(
    start: str, expected: float
) -> None:
    probe = START + "print(sys.getswitchinterval())\n"
    done = subprocess.run(
        [sys.executable, "-c", probe, start], capture_output=True, text=True, check=True
    )
    assert float(done.stdout.split()[-1]) == pytest.approx(expected)
