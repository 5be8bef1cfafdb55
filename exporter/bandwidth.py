"""A target's bandwidth limit (`--bwlimit 2M`): a token bucket every upload path draws from.

Cameras that share a slow link must not starve each other, so the limit covers all bytes of
file data an exporter sends to the target: version 1 uploads, `/blobs` requests and tus
chunks alike. The bucket holds at most one second of tokens, so a pause never turns into a
burst at several times the limit.
"""

import threading
import time


class TokenBucket:
    """`take(n)` blocks until n bytes may go; thread-safe. rate None: never blocks."""

    def __init__(self, rate: int | None, clock=time.monotonic, sleep=time.sleep):
        self.rate = rate
        self._clock, self._sleep = clock, sleep
        self._tokens = float(rate or 0)
        self._last = clock()
        self._lock = threading.Lock()

    def piece(self, most: int) -> int:
        """Bytes to send between two draws: `most`, or under a limit a quarter second's worth,
        so a slow link gets an even flow rather than a burst and a long pause."""
        return most if not self.rate else max(16 * 1024, min(most, self.rate // 4))

    def take(self, nbytes: int) -> None:
        if not self.rate or nbytes <= 0:
            return
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.rate), self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= nbytes     # may go negative: the debt is slept off below
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
