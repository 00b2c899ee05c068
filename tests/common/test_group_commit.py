"""common.group_commit without a database: how the committed writer's answers are taken."""

from __future__ import annotations

import contextlib

from common.group_commit import NOT_WRITTEN, GroupCommitter, InlineWriter, _Waiting


class _Session:
    def commit(self) -> None:
        pass


@contextlib.contextmanager
def _sessions():
    yield _Session()


def _committer(write_committed, session_writes: list) -> GroupCommitter:
    def write_group(_session, requests):
        session_writes.extend(requests)
        return [f"session:{items[0]}" for items in requests]

    def write_one(_session, items):
        session_writes.append(items)
        return f"alone:{items[0]}"

    return GroupCommitter(_sessions, write_group=write_group, write_one=write_one, timeout=TimeoutError,
                          write_committed=write_committed)


def test_a_request_whose_committed_result_is_none_is_not_written_again():
    session_writes: list = []
    committer = _committer(lambda requests: [None, NOT_WRITTEN, "done"], session_writes)
    group = [_Waiting(["a"]), _Waiting(["b"]), _Waiting(["c"])]
    committer._commit(group)  # the committer thread's step, on one group as the queue gave it
    assert [waiting.outcome for waiting in group] == [None, "session:b", "done"]
    assert session_writes == [["b"]]  # only the request left alone took the session path


def test_a_committed_writer_that_wrote_nothing_leaves_the_whole_group_to_the_session():
    session_writes: list = []
    committer = _committer(lambda requests: None, session_writes)
    group = [_Waiting(["a"]), _Waiting(["b"])]
    committer._commit(group)
    assert [waiting.outcome for waiting in group] == ["session:a", "session:b"]
    assert session_writes == [["a"], ["b"]]


def test_the_inline_writer_takes_none_as_a_result_too():
    session_writes: list = []

    def write_one(_session, items):
        session_writes.append(items)
        return "alone"

    assert InlineWriter(_sessions, write_one, lambda requests: [None]).submit(["a"]) is None
    assert InlineWriter(_sessions, write_one, lambda requests: [NOT_WRITTEN]).submit(["b"]) == "alone"
    assert session_writes == [["b"]]


def test_a_failed_write_is_logged_by_its_exception_type_not_its_message():
    # A database error's message quotes the row's values (an ID number, a name); the log keeps
    # the type, which says what went wrong without them.
    from structlog.testing import capture_logs

    def refuse(*_args):
        raise ValueError("duplicate key value (id_number)=(610102199001011234)")

    committer = GroupCommitter(_sessions, write_group=refuse, write_one=lambda _session, items: "alone",
                               timeout=TimeoutError, write_committed=refuse)
    group = [_Waiting(["a"])]
    with capture_logs() as captured:
        committer._commit(group)
    assert group[0].outcome == "alone"
    assert [(e["event"], e["error_type"]) for e in captured] == [(committer.failed_event, "ValueError")] * 2
    assert "610102199001011234" not in repr(captured)
