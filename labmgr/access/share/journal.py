"""Who opened what and when: a share's events and sign-offs, written into the lab's history.

The web server never waits on SQLite: events go through a queue to one writer thread,
which owns the history's connection. Sign-offs are written at once (the person is told
when it is recorded), through the same thread.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future

from ...history import ShareEvent, Signoff, history_for, now

REFUSED_PER_MINUTE = 60


class Journal:
    def __init__(self, env, lab: str, share: str) -> None:
        self.env, self.lab, self.share = env, lab, share
        self.jobs: queue.Queue = queue.Queue()
        self._minute, self._kept, self._dropped = -1, 0, 0
        self.thread = threading.Thread(target=self._write, name="share-journal", daemon=True)
        self.thread.start()

    def event(self, person: str, event: str, detail: str = "") -> None:
        self.jobs.put(ShareEvent(self.share, person, event, detail[:500], now()))

    def refused(self, detail: str) -> None:
        """A refused request: at most REFUSED_PER_MINUTE are kept a minute, then one line says how many
        more (someone trying tokens must not fill the history)."""
        minute = int(time.monotonic() // 60)
        if minute != self._minute:
            if self._dropped:
                self.event("", "refused", f"{self._dropped} more requests refused in that minute")
            self._minute, self._kept, self._dropped = minute, 0, 0
        if self._kept < REFUSED_PER_MINUTE:
            self._kept += 1
            self.event("", "refused", detail)
        else:
            self._dropped += 1

    def sign_off(self, point: str, person: str, verdict: str, note: str) -> Future:
        """Record a sign-off; the future gives the ``Signoff`` once it is in the history."""
        done: Future = Future()
        self.jobs.put((point, person, verdict, note, done))
        return done

    def close(self) -> None:
        if self._dropped:
            self.event("", "refused", f"{self._dropped} more requests refused in the last minute")
        self.jobs.put(None)
        self.thread.join(timeout=10)

    def _write(self) -> None:
        with history_for(self.env) as history:
            while (job := self.jobs.get()) is not None:
                try:
                    if isinstance(job, ShareEvent):
                        history.add_share_events(self.lab, self.env.name, [job])
                    else:
                        point, person, verdict, note, done = job
                        signoff: Signoff = history.add_signoff(self.lab, self.env.name, point, person, note, verdict)
                        history.add_share_events(self.lab, self.env.name, [
                            ShareEvent(self.share, person, "signoff", f"{verdict}: {note}"[:500], signoff.at)])
                        done.set_result(signoff)
                except Exception as exc:            # a full disk: the sign-off says so, the server goes on
                    if not isinstance(job, ShareEvent):
                        job[-1].set_exception(exc)
