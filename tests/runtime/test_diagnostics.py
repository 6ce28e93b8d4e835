"""SIGUSR1 logs every thread's stack; a fatal signal (the watchdog's SIGABRT) prints them to stderr."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

import structlog
from structlog.testing import capture_logs

from latentd.runtime.diagnostics import StackDumpSignal, thread_stacks


def parked_in_a_named_function(stop: threading.Event) -> None:
    stop.wait(30)


def test_sigusr1_logs_the_stack_of_every_thread() -> None:
    stop = threading.Event()
    worker = threading.Thread(target=parked_in_a_named_function, args=(stop,), name="latentd-engine")
    worker.start()
    dump = StackDumpSignal().install()
    try:
        log = structlog.get_logger("test")
        with capture_logs() as logs:
            assert not dump.poll(log)  # nothing requested yet
            os.kill(os.getpid(), signal.SIGUSR1)  # the handler runs in this thread, before kill returns
            assert dump.requested
            assert dump.poll(log)
            assert not dump.poll(log)  # one dump per signal
    finally:
        dump.uninstall()
        stop.set()
        worker.join()
    assert [e["event"] for e in logs] == ["threads.dump"]
    event = logs[0]
    assert event["reason"] == "SIGUSR1"
    by_name = {t["name"]: t for t in event["threads"]}
    assert "MainThread" in by_name
    assert any("parked_in_a_named_function" in line for line in by_name["latentd-engine"]["stack"])
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # the previous handler is back


def test_thread_stacks_name_the_current_function() -> None:
    stacks = {t["name"]: t for t in thread_stacks()}
    assert any(
        "test_thread_stacks_name_the_current_function" in line for line in stacks["MainThread"]["stack"]
    )


def test_sigabrt_prints_every_thread_to_stderr() -> None:
    """What a watchdog kill leaves in the journal, even when the main thread is stuck."""
    script = textwrap.dedent(
        """
        import os, threading, time
        from latentd.runtime.diagnostics import enable_fatal_dumps

        def wedged_engine_loop():
            time.sleep(30)

        enable_fatal_dumps()
        threading.Thread(target=wedged_engine_loop, daemon=True).start()
        time.sleep(0.2)
        os.abort()
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGABRT
    assert "Fatal Python error: Aborted" in proc.stderr
    assert "wedged_engine_loop" in proc.stderr
