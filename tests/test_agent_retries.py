"""The guest agent's waits and retries (tenacity), against a stand-in for the agent's replies.

Pure logic: the real agent is exercised by the libvirt tests (test_collect.py's
lost read retried from its offset, every boot's wait_ready)."""

from __future__ import annotations

import base64
import time

import pytest

from labmgr.dumps.sources import DumpError
from labmgr.dumps.sources import agent as source_agent
from labmgr.errors import AgentError
from labmgr.hypervisor.agent import GuestAgent


class Domain:
    name = "lmb-fake"

    def __init__(self, active=True):
        self.active = active

    def is_active(self):
        return self.active


def agent_answering(replies):
    """A GuestAgent whose calls get ``replies`` in turn (an exception is raised)."""
    agent = GuestAgent(Domain())
    calls = []

    def command(execute, timeout=None, **arguments):
        calls.append((execute, arguments))
        reply = replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    agent.command = command
    return agent, calls


def test_wait_ready_returns_once_the_agent_answers():
    agent, calls = agent_answering([AgentError("no"), AgentError("no"), {}])
    waited = agent.wait_ready(timeout=10, poll=0.01)
    assert [c[0] for c in calls] == ["guest-ping"] * 3 and 0.02 <= waited < 1


def test_wait_ready_gives_up_after_its_timeout():
    agent, _ = agent_answering([AgentError("no")] * 1000)
    started = time.monotonic()
    with pytest.raises(AgentError, match="did not answer within 0 s"):
        agent.wait_ready(timeout=0.2, poll=0.05)
    assert 0.2 <= time.monotonic() - started < 2


def test_wait_ready_stops_when_the_domain_stops():
    agent, calls = agent_answering([AgentError("no")] * 10)
    agent.domain.active = False
    with pytest.raises(AgentError, match="stopped while booting"):
        agent.wait_ready(timeout=10, poll=0.01)
    assert len(calls) == 1


def test_wait_exit_polls_until_exited_or_the_deadline():
    agent, calls = agent_answering([{"exited": False}, {"exited": False}, {"exited": True, "exitcode": 3}])
    assert agent.wait_exit(7, time.monotonic() + 10) == {"exited": True, "exitcode": 3}
    assert calls == [("guest-exec-status", {"pid": 7})] * 3
    agent, _ = agent_answering([{"exited": False}] * 1000)
    started = time.monotonic()
    assert agent.wait_exit(7, time.monotonic() + 0.3) is None
    assert time.monotonic() - started < 2


def dump_with(agent):
    dump = source_agent._Dump.__new__(source_agent._Dump)
    dump.agent = agent
    dump.error = lambda problem, hint=None: DumpError(problem, hint=hint)
    return dump


def test_a_failed_read_is_retried_after_seeking_back_to_its_offset(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)
    good = {"buf-b64": base64.b64encode(b"abc").decode(), "count": 3, "eof": True}
    agent, calls = agent_answering([AgentError("lost"), {}, {"buf-b64": "!!", "count": 2}, {}, good])
    assert dump_with(agent)._read(5, 4096) == (b"abc", True)
    assert [c[0] for c in calls] == ["guest-file-read", "guest-file-seek", "guest-file-read",
                                     "guest-file-seek", "guest-file-read"]
    assert calls[1][1] == {"handle": 5, "offset": 4096, "whence": "set"}


def test_a_read_failing_every_time_is_one_dump_error(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)
    agent, calls = agent_answering([AgentError("lost"), {}, AgentError("lost"), {}, AgentError("gone for good")])
    with pytest.raises(DumpError, match="at byte 4096 failed 3 times: gone for good"):
        dump_with(agent)._read(5, 4096)
    assert len(calls) == 5
