"""The bandwidth limit: parsing with the target, the token bucket on a fake clock."""

import pytest

from exporter.bandwidth import TokenBucket
from model.export.targets import TargetError, Targets, check_bwlimit


class Clock:
    def __init__(self):
        self.now = 0.0
        self.slept = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.parametrize("text, rate", [
    ("2M", 2 * 1024 ** 2), ("512K", 512 * 1024), ("1.5M", int(1.5 * 1024 ** 2)),
    ("100", 100), ("1G", 1024 ** 3), ("2MiB/s", 2 * 1024 ** 2), (4096, 4096),
    ("0", None), (0, None), ("", None), (None, None)])
def test_rates(text, rate):
    assert check_bwlimit(text) == rate


@pytest.mark.parametrize("text", ["fast", "-1", "2X", -5, True, "1e3"])
def test_bad_rates_say_what_is_expected(text):
    with pytest.raises(TargetError, match="e.g. 2M"):
        check_bwlimit(text)


def test_the_bucket_allows_one_second_then_paces():
    clock = Clock()
    bucket = TokenBucket(1000, clock=clock, sleep=clock.sleep)
    bucket.take(1000)                     # the first second's worth goes at once
    assert clock.slept == []
    bucket.take(500)
    assert clock.slept == [0.5]
    clock.now += 10                       # a long pause does not bank more than a second
    bucket.take(3000)
    assert clock.slept[-1] == pytest.approx(2.0)
    for _ in range(10):
        bucket.take(100)
    assert clock.now == pytest.approx(10.5 + 2.0 + 1.0)   # 1000 bytes at 1000/s


def test_pieces_are_a_quarter_second_under_a_limit():
    assert TokenBucket(None).piece(1 << 20) == 1 << 20
    assert TokenBucket(2 << 20).piece(1 << 20) == 512 << 10
    assert TokenBucket(1000).piece(1 << 20) == 16 << 10       # never tiny
    assert TokenBucket(100 << 20).piece(1 << 20) == 1 << 20


def test_no_limit_never_waits():
    clock = Clock()
    TokenBucket(None, clock=clock, sleep=clock.sleep).take(10 ** 9)
    assert clock.slept == []


def test_a_target_keeps_its_limit(sqlite_site):
    targets = Targets(sqlite_site.database)
    added = targets.add("b", "http://127.0.0.1:1/import", "u", "password", bwlimit="2M")
    assert added.bwlimit == 2 * 1024 ** 2 and added.to_json()["bwlimit"] == 2 * 1024 ** 2
    assert targets.change("b", bwlimit="0").bwlimit is None
    with pytest.raises(TargetError):
        targets.change("b", bwlimit="lots")
    assert targets.get("b").bwlimit is None
