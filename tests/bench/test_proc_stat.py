"""tests.support.proc_stat, which the benchmarks' CPU per request is read from: a child process
is found under its parent, and the CPU it burnt is counted for it alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.proc_stat import children, cpu_seconds, cpu_seconds_of, stat_fields
from tests.support.suite import wait_for

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="no /proc on this system")

# Burns 0.3 s of CPU, then waits for its standard input to close.
BURN = "import sys, time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\nsys.stdin.read()"


def test_a_child_is_found_under_its_parent_and_its_cpu_counted_for_it_alone():
    child = subprocess.Popen([sys.executable, "-c", BURN], stdin=subprocess.PIPE)
    try:

        def burnt_enough() -> bool:
            fields = stat_fields(child.pid)
            return fields is not None and cpu_seconds(fields) >= 0.25

        wait_for(burnt_enough, 30, "the child's 0.25 s of CPU", interval=0.05)
        assert child.pid in children(os.getpid())
        assert child.pid not in children(child.pid)
        burnt = cpu_seconds_of(lambda pid, _parent: pid == child.pid)
        assert 0.25 <= burnt < 5
        assert cpu_seconds_of(lambda _pid, parent: parent == child.pid) == 0  # it has no children
    finally:
        child.stdin.close()
        child.wait(10)


def test_a_process_that_is_gone_has_no_fields():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(10)  # reaped: its /proc entry is gone (pids are not reused at once)
    assert stat_fields(child.pid) is None
    assert child.pid not in children(os.getpid())
