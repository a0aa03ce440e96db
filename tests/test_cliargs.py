"""Shared CLI pieces: number lists, and the commands that use them."""

from __future__ import annotations

import pytest

from repetita.cli import main
from repetita.cliargs import number_list, parse_number
from repetita.errors import UserError


def test_number_lists_from_commas_words_and_suffixes():
    assert number_list("1,2, 4", "--k") == [1.0, 2.0, 4.0]
    assert number_list(["1e4", "2e4,3e4"], "--N", whole=True) == [10000, 20000, 30000]
    assert number_list("400M", "--params") == [4e8]
    assert parse_number("1.5T", "--tokens") == 1.5e12


@pytest.mark.parametrize(
    "values, kwargs, message",
    [
        ("1,x", {}, "--v: 'x' is not a number"),
        ("2.5", {"whole": True}, "--v: '2.5' is not a whole number"),
        ("0", {"positive": True}, "--v must be positive, got 0"),
        (" , ", {}, "--v: no values given"),
        ([], {}, "--v: no values given"),
    ],
)
def test_number_list_errors_name_the_value(values, kwargs, message):
    with pytest.raises(UserError) as err:
        number_list(values, "--v", **kwargs)
    assert str(err.value) == message


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sft", "plan", "--budget", "64", "--pool", "64", "--samples", "4,a"], "--samples: 'a' is not a number"),
        (["sft", "plan", "--budget", "64", "--pool", "64", "--samples", "4,0"], "--samples must be positive"),
        (["mix", "optimize", "--weights", "0.9,x"], "--weights: 'x' is not a number"),
    ],
)
def test_commands_reject_bad_lists_in_one_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_quantities_read_and_written_the_same_way():
    from repetita.cliargs import format_quantity, quantity

    cases = {5e8: "500M", 1e9: "1B", 2.5e12: "2.5T", 1e4: "10k", 0.5: "0.5", 1e22: "1e22", 3e21: "3x1e21",
             14.1e6: "14.1M"}
    for value, text in cases.items():
        assert format_quantity(value) == text
        if "x" not in text:
            assert quantity(text) == pytest.approx(value, rel=1e-9)  # what a figure shows reads back
    assert quantity("4.2B") == 4.2e9 and quantity(" 85B ") == 85e9 and quantity("1e9B") == 1e18
    assert quantity("abc") is None and quantity("") is None
