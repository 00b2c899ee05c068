"""Concurrent writes of one process sent together: one statement, one commit, for a group.

Online verification of a known code ends in one self-committing statement that takes the use
and records it (:meth:`licenses.verification_store.PostgresStore.take_known`). Sent one request
at a time, each pays the statement's round trip and its own commit (PostgreSQL's parse, bind
and executor start-up, the commit record and its WAL flush): the database's backends spent
0.32-0.46 ms of CPU per verification under ``bench.licenses`` (a third of the server's own), and
under load the backends queued for the WAL flush (3-9 of 34 waiting on ``WALWrite``). Here the
takes that the process's request threads reach while one is being written wait for it and go
together, in the next statement: about six a statement at wrk's 32 connections, 0.14-0.22 ms
of the backends' CPU per verification, the flush queue gone (0.1-0.6 waiting).

How (leader and followers, no thread of its own): a request appends its take to the queue;
if no statement is being written, its own thread writes the group (it *leads*): its take first,
then every queued take with another key (two takes of one authorisation never go in one
statement: the second waits for the next), on its own connection. Then it hands the lead to
the oldest take still queued, whose thread writes the next group, and answers the others. So a
follower waits on a lock where it would have waited on its own statement's socket (one wake-up
either way: no hand-off to a committer thread and back, which ``common.group_commit`` pays), a
lone request writes at once, and groups grow with the load, as PostgreSQL's own group commit.

Nothing is answered a success before the statement that holds it returned (committed). If the
statement fails, every take of its group fails (its outcome may be unknown: nothing is sent
again); so does a take whose statement has not returned ``write_seconds`` after its wait (its
leader stuck or its thread dead), and the lead is taken back from that leader: two statements
may then be out at once, as from two processes, and a key in both waits on its row lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

from common.errors import Problem, ServiceUnavailable

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")

_QUEUED, _TAKEN, _LEAD, _ANSWERED = range(4)
# At most this many takes a statement: a worker holds at most its threads' worth (16 by default)
# at once, so this only bounds one statement's JSON and locks if a deployment runs many more.
MAX_ITEMS = 64
# How long a take waits for a statement to carry it: as long as a DriverPool checkout may wait
# (common.db_driver), so a verification gives up on the database after the same time either way.
WAIT_SECONDS = 30.0
# How long a take already in a group waits, beyond that, for the group's statement to return: no
# statement timeout bounds it, and a leader whose thread died would otherwise hold its followers
# (and the lead) for good. Generous: a statement that slow is the database's failure anyway.
WRITE_WAIT_FACTOR = 4


class GroupWriteFailed(ServiceUnavailable):
    """The statement of the group a take was in failed (the cause is its error); the take
    may or may not have been written. The client is told 503, as for its own statement's failure."""

    code, title = "verification_write_failed", "The verification could not be recorded"


class GroupWaitTimeout(ServiceUnavailable):
    """No statement took this take within the wait (nothing of it was written): 503."""

    code, title = "database_busy", "No database write came free in time"


class _Group:
    """One statement's takes; ``lead_passed`` once its leader, or a follower that gave up on
    it, has passed the lead on (exactly once, under the lock)."""

    __slots__ = ("lead_passed",)

    def __init__(self) -> None:
        self.lead_passed = False


class _Waiting:
    """One take and, once answered, its outcome. The wake-up is a bare lock, released once."""

    __slots__ = ("item", "key", "state", "group", "outcome", "error", "_ready")

    def __init__(self, item: Any, key: Hashable) -> None:
        self.item, self.key = item, key
        self.state = _QUEUED
        self.group: _Group | None = None
        self.outcome: Any = None
        self.error: BaseException | None = None
        self._ready = threading.Lock()
        self._ready.acquire()

    def wake(self, state: int) -> None:
        self.state = state
        self._ready.release()


class TakeGroups(Generic[Item, Outcome]):
    """Groups the concurrent :meth:`run` calls of one process into shared writes.

    ``write(context, items)`` writes ``items`` (distinct keys) in one go on the leader's
    ``context`` (its connection) and returns one outcome per item, in order; it raises when
    nothing can be said of the group."""

    def __init__(self, write: Callable[[Any, Sequence[Item]], Sequence[Outcome]], key: Callable[[Item], Hashable],
                 *, max_items: int = MAX_ITEMS, wait_seconds: float = WAIT_SECONDS,
                 write_seconds: float | None = None) -> None:
        self._write, self._key = write, key
        self.max_items, self.wait_seconds = max_items, wait_seconds
        self.write_seconds = WRITE_WAIT_FACTOR * wait_seconds if write_seconds is None else write_seconds
        self._lock = threading.Lock()
        self._queue: list[_Waiting] = []
        self._leading = False
        self.groups = 0  # statements written, and the takes they carried (tests, measurements)
        self.items = 0

    def run(self, context: Any, item: Item) -> Outcome:
        """Write ``item`` with whatever else is waiting; its outcome once the statement returned.

        :raise GroupWriteFailed: the statement of the group holding ``item`` failed (this
            thread's or another's; the cause is its error), or did not return within
            ``write_seconds`` after the wait (its outcome unknown).
        :raise GroupWaitTimeout: ``item`` waited ``wait_seconds`` without being written.
        :raise: a :class:`~common.errors.Problem` (or a non-``Exception``) that ``write`` raised
            in this thread's own statement, as it was raised.
        """
        me = _Waiting(item, self._key(item))
        with self._lock:
            self._queue.append(me)
            lead = not self._leading
            self._leading = True
        if not lead:
            self._wait(me)
            if me.state == _ANSWERED:
                if me.error is not None:
                    raise GroupWriteFailed("the statement of this verification's group failed") from me.error
                return me.outcome
        return self._lead(context, me)

    def _wait(self, me: _Waiting) -> None:
        try:
            if me._ready.acquire(timeout=self.wait_seconds):
                return
        except BaseException:
            # Interrupted while waiting (an asynchronous exception): leave the queue (a take told
            # to lead is still at its head) and, if told to lead, pass the lead on, so the
            # process's grouping never stalls. A take already in a group is its leader's.
            with self._lock:
                if me.state in (_QUEUED, _LEAD):
                    self._queue.remove(me)
                    if me.state == _LEAD:
                        self._hand_on_locked()
            raise
        with self._lock:
            if me.state == _QUEUED:  # still in the queue: leave it, nothing was written
                self._queue.remove(me)
                raise GroupWaitTimeout(f"no database write came free in {self.wait_seconds:g} s")
        # In a group being written (or just told to lead: that comes at once): its statement is
        # out, but bounded all the same, in case the leader's thread died with it.
        if me._ready.acquire(timeout=self.write_seconds):
            return
        with self._lock:
            if me.state == _ANSWERED:  # answered between the timeout and the lock
                return
            # Its leader never answered: take the lead back from it (unless it passed it on), so
            # later takes are written; if that leader ever returns it leaves the lead alone.
            self._hand_on_from(me.group)
        raise GroupWriteFailed(f"the statement of this verification's group did not return in "
                               f"{self.wait_seconds + self.write_seconds:g} s")

    def _lead(self, context: Any, me: _Waiting) -> Outcome:
        handed_on = False
        try:
            with self._lock:
                group = self._take_group(me)
            try:
                outcomes = self._write(context, [w.item for w in group])
                if len(outcomes) != len(group):  # every follower must be woken, whatever happened
                    raise RuntimeError(f"a group of {len(group)} takes got {len(outcomes)} outcomes")
            except BaseException as error:
                for waiting in group[1:]:
                    waiting.error = error
                    waiting.wake(_ANSWERED)
                if isinstance(error, Exception) and not isinstance(error, Problem):
                    # the leader's own request is told what its followers are (503), not a 500
                    raise GroupWriteFailed("the statement of this verification's group failed") from error
                raise
            self.groups += 1
            self.items += len(group)
            # The next leader is woken before this group's followers: its statement is what every
            # queued take waits for, and a thread woken later queues behind the earlier ones for
            # the GIL (measured: the next statement went 1.2-2.4 ms after the hand-on instead of
            # 1.8-4.1 ms, groups the same size; docs/ARCHITECTURE.md, licences, eighth pass). End to
            # end, with the cores saturated, it was within the noise (seven alternated pairs); it
            # is kept for the idle core of a quiet machine, as the docs say, not measured yet.
            try:
                with self._lock:
                    self._hand_on_from(me.group)
                handed_on = True
            finally:
                for waiting, outcome in zip(group[1:], outcomes[1:], strict=True):
                    waiting.outcome = outcome
                    waiting.wake(_ANSWERED)
            return outcomes[0]
        finally:
            # Whatever was interrupted where (an exception, a statement that failed): the lead is
            # passed on here, once (``lead_passed``); a lead that ended with its hand-on skips
            # the lock and the queue scan.
            if not handed_on:
                with self._lock:
                    if me in self._queue:  # interrupted before it took its group: not a take to lead
                        self._queue.remove(me)
                    self._hand_on_from(me.group)

    def _hand_on_from(self, group: _Group | None) -> None:
        """The lead on from ``group`` (``None``: its leader took none), unless a follower that
        gave up on its statement passed it already; the caller holds the lock."""
        if group is not None:
            if group.lead_passed:
                return
            group.lead_passed = True
        self._hand_on_locked()

    def _hand_on_locked(self) -> None:
        """The lead to the oldest take still queued, or to nobody (the next take leads); the
        caller holds the lock."""
        if self._queue:
            self._queue[0].wake(_LEAD)
        else:
            self._leading = False

    def _take_group(self, me: _Waiting) -> list[_Waiting]:
        """``me`` and the queued takes whose keys differ from each other and from its own, oldest
        first, taken off the queue (caller holds the lock)."""
        self._queue.remove(me)
        me.group = _Group()
        group, keys, left = [me], {me.key}, []
        for waiting in self._queue:
            if len(group) < self.max_items and waiting.key not in keys:
                keys.add(waiting.key)
                waiting.state, waiting.group = _TAKEN, me.group
                group.append(waiting)
            else:
                left.append(waiting)
        self._queue = left
        return group
