"""This machine's processes as ``/proc/<pid>/stat`` tells them: who a process's children are,
and how much CPU a set of processes has used (benchmarks measure CPU per request from here:
wall clock is noisy on a shared machine). Linux only; elsewhere no process is found."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

# Fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses, so
# the line is split after its last ")"): 1 is the parent's pid, 11 and 12 are user and system
# time in clock ticks (proc(5) numbers them 4, 14 and 15, counting pid and command).
_PARENT, _UTIME, _STIME = 1, 11, 12


def stat_fields(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name, or ``None`` when the process
    is gone (or ``/proc`` does not exist)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def processes() -> Iterator[tuple[int, list[str]]]:
    """Every process now running: its pid and :func:`stat_fields`."""
    if not os.path.isdir("/proc"):
        return
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := stat_fields(entry)) is not None:
            yield int(entry), fields


def cpu_seconds(fields: list[str]) -> float:
    """User plus system CPU seconds of a process, from its :func:`stat_fields`."""
    return (int(fields[_UTIME]) + int(fields[_STIME])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds_of(wanted: Callable[[int, int], bool]) -> float:
    """CPU seconds so far of the processes ``wanted(pid, parent pid)`` picks."""
    return sum(cpu_seconds(fields) for pid, fields in processes() if wanted(pid, int(fields[_PARENT])))


def children(pid: int) -> list[int]:
    """The pids of ``pid``'s direct children (a gunicorn arbiter's workers)."""
    return [child for child, fields in processes() if int(fields[_PARENT]) == pid]
