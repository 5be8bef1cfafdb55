"""The one rule for integers from the wire (`codec.int64`, `codec.decimal`): 64 signed bits,
and, written as text, ASCII digits with an optional '-' (docs/protocol.md, "Integers from
the wire")."""

import pytest

from model.protocol import codec
from model.protocol.codec import EntityError


@pytest.mark.parametrize("text, value", [
    ("0", 0), ("42", 42), ("-7", -7), (str(2 ** 63 - 1), 2 ** 63 - 1),
    (str(-(2 ** 63)), -(2 ** 63)), ("0" * 30 + "5", 5)])
def test_decimal_reads_ascii_digits_within_64_bits(text, value):
    assert codec.decimal(text, "n") == value


@pytest.mark.parametrize("text, words", [
    (str(2 ** 63), "n: integer out of the 64-bit range"),
    (str(-(2 ** 63) - 1), "n: integer out of the 64-bit range"),
    ("9" * 5000, "n: integer out of the 64-bit range"),    # refused before int() reads it
    ("\u00b2", "n: expected an integer"), ("\u0663", "n: expected an integer"),
    ("1.0", "n: expected an integer"), (" 1", "n: expected an integer"),
    ("1\n", "n: expected an integer"), ("", "n: expected an integer"),
    ("+1", "n: expected an integer"), (None, "n: expected an integer")])
def test_decimal_refuses_what_is_no_64_bit_integer(text, words):
    with pytest.raises(EntityError) as refused:
        codec.decimal(text, "n")
    assert str(refused.value).startswith(words)


def test_decimal_says_what_the_field_holds_and_checks_the_minimum():
    with pytest.raises(EntityError, match="limit: expected a positive integer, got 'x'"):
        codec.decimal("x", "limit", minimum=1, expected="a positive integer")
    with pytest.raises(EntityError, match="limit: must be at least 1, got 0"):
        codec.decimal("0", "limit", minimum=1)


@pytest.mark.parametrize("value", [2 ** 63, -(2 ** 63) - 1, 2 ** 200])
def test_int64_is_the_range_of_every_integer_reader(value):
    for read in (codec.int64, codec.integer, codec.number):
        with pytest.raises(EntityError, match="out of the 64-bit range"):
            read(value, "n")


def test_shown_bounds_a_huge_or_deeply_nested_value():
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert len(codec.shown(deep)) <= 60
    assert len(codec.shown("x" * 10_000)) == 60
