"""The exporter's retry decisions with plain values: no importer, no database."""

import pytest

from tests.site_kit import sync_settings
from exporter import errors
from exporter.resumable import UploadRefused
from exporter.retry import (MAX_ENTITY_5XX, MAX_STALLS, Fault, RetryPolicy,
                            ServerErrorStreak, fault_of, keep_uploading, may_be_the_entitys,
                            means_version_1)

ENTITY, TARGET, CREDENTIALS = Fault.ENTITY, Fault.TARGET, Fault.CREDENTIALS

ERRORS = {
    "unreachable": errors.Unreachable("cannot connect"),
    "tls": errors.TLSError("certificate not trusted"),
    "timeout": errors.TimedOut("no answer"),
    "500": errors.ServerError("importer error 500", 500),
    "429": errors.ServerError("too many requests", 429, retry_after_s=7),
    "404": errors.NotFound("no importer here", 404),
    "400": errors.Refused("refused (400)", 400),
    "413": errors.Refused("refused (413)", 413),
    "garbage": errors.ProtocolError("protocol: not JSON"),
    "401": errors.AuthError("wrong password", 401),
    "403": errors.Forbidden("no role import", 403),
    "upload refused": UploadRefused("md5 mismatch", 460),
    "blob gone": errors.FinalError("blob left the archive"),
    "unsorted": errors.ExportError("neither retryable nor final"),
}


@pytest.mark.parametrize("error, fault", [
    ("unreachable", TARGET), ("tls", TARGET), ("timeout", TARGET), ("500", TARGET),
    ("429", TARGET), ("404", TARGET), ("unsorted", TARGET),
    ("400", ENTITY), ("413", ENTITY), ("garbage", ENTITY), ("upload refused", ENTITY),
    ("blob gone", ENTITY),
    ("401", CREDENTIALS), ("403", CREDENTIALS),
])
def test_whose_fault_an_error_is(error, fault):
    assert fault_of(ERRORS[error]) is fault


@pytest.mark.parametrize("error, version_1", [
    ("400", True), ("404", True), ("garbage", True),
    ("401", False), ("403", False), ("unreachable", False), ("timeout", False),
    ("500", False), ("429", False),
])
def test_which_errors_asking_for_capabilities_mean_version_1(error, version_1):
    assert means_version_1(ERRORS[error]) is version_1


@pytest.mark.parametrize("attempts, wait_s", [
    (0, 30), (1, 60), (2, 120), (6, 1920), (7, 3600), (40, 3600),
])
def test_a_failed_entity_waits_base_doubled_per_attempt_up_to_max(attempts, wait_s):
    assert RetryPolicy(base_s=30, max_s=3600).entity_wait_s(attempts) == wait_s


@pytest.mark.parametrize("attempts, now, at", [
    (0, 1_000_000, 1_030_000), (3, 1_000_000, 1_240_000), (9, 1_000_000, 4_600_000),
])
def test_when_a_failed_entity_is_due_again(attempts, now, at):
    assert RetryPolicy(base_s=30, max_s=3600).entity_retry_at(attempts, now) == at


@pytest.mark.parametrize("failures, retry_after_s, wait_s", [
    (1, 0, 10), (2, 0, 20), (3, 0, 40), (4, 0, 60), (9, 0, 60),
    (1, 25, 25),      # the importer asked for longer: its Retry-After wins
    (3, 25, 40),      # a shorter Retry-After does not shorten the backoff
    (4, 300, 300),    # nor does the maximum cap what the importer asked
])
def test_a_failed_target_waits_base_doubled_per_failure_up_to_max(failures, retry_after_s,
                                                                  wait_s):
    assert RetryPolicy(base_s=10, max_s=60).target_wait_s(failures, retry_after_s) == wait_s


@pytest.mark.parametrize("policy, failures, retry_after_s, now, at", [
    (RetryPolicy(10, 60), 1, 0, 1_000_000, 1_010_000),
    (RetryPolicy(10, 60), 5, 0, 1_000_000, 1_060_000),
    (RetryPolicy(0.5, 60), 1, 0, 1_000_000, 1_000_500),
    (RetryPolicy(10, 60), 1, 7.25, 1_000_000, 1_010_000),
    (RetryPolicy(1, 60), 1, 7.25, 1_000_000, 1_007_250),
    (RetryPolicy(0, 0), 3, 0, 1_000_000, 1_000_000),
])
def test_when_a_failed_target_is_due_again(policy, failures, retry_after_s, now, at):
    assert policy.target_retry_at(failures, retry_after_s, now) == at


@pytest.mark.parametrize("stalls, keep", [(0, True), (1, True), (2, True), (3, False),
                                          (4, False)])
def test_a_resumable_upload_gives_up_after_three_stalls_in_a_row(stalls, keep):
    assert MAX_STALLS == 3
    assert keep_uploading(stalls) is keep


def test_the_policy_reads_the_backoff_settings():
    settings = sync_settings(backoff_base_s=2.5, backoff_max_s=90)
    assert RetryPolicy.from_settings(settings) == RetryPolicy(base_s=2.5, max_s=90)


@pytest.mark.parametrize("error, maybe", [
    (errors.ServerError("internal error", 500), True),
    (errors.ServerError("not implemented", 501), True),
    (errors.ServerError("bad gateway", 502), False),      # a proxy could not reach it
    (errors.ServerError("busy", 503), False),             # the importer says: later
    (errors.ServerError("gateway timeout", 504), False),
    (errors.ServerError("too many", 429), False),
    (ERRORS["timeout"], False), (ERRORS["unreachable"], False), (ERRORS["400"], False),
    (ERRORS["401"], False),
])
def test_which_5xx_may_be_one_entitys(error, maybe):
    assert may_be_the_entitys(error) is maybe


def server_error(n: int) -> errors.ServerError:
    return errors.ServerError(f"importer error 500 #{n}", 500)


def test_a_streak_broken_by_an_answer_was_its_entities_own():
    streak = ServerErrorStreak()
    assert streak.broken() == [] and streak.answered       # an answer, no streak
    assert streak.add("a", server_error(1)) is None        # undecided: go on
    assert streak.add("b", server_error(2)) is None
    assert streak.items == ["a", "b"]
    blamed = streak.broken()
    assert [item for item, _ in blamed] == ["a", "b"] and streak.suspects == []


def test_a_streak_of_max_entity_5xx_is_the_targets():
    assert MAX_ENTITY_5XX == 3
    streak = ServerErrorStreak()
    faults = [streak.add(name, server_error(n)) for n, name in enumerate("abc")]
    assert faults == [None, None, Fault.TARGET] and streak.items == ["a", "b", "c"]


@pytest.mark.parametrize("answered_before, fault", [(True, ENTITY), (False, TARGET)])
def test_a_streak_open_at_the_end_of_the_queue(answered_before, fault):
    streak = ServerErrorStreak()
    if answered_before:
        streak.broken()
    streak.add("last", server_error(1))
    assert streak.at_end() is fault
