"""Text from records, made safe for a terminal."""

from __future__ import annotations

import pytest

from imageprov.cli.render import safe


@pytest.mark.parametrize("character", ["\x1b", "\x00", "\x9b", "\u202e", "\u2066",
                                       "\u2028", "\u2029", "\u200f"])
def test_control_and_reordering_characters_replaced(character):
    assert safe(f"ami{character}1") == "ami\N{REPLACEMENT CHARACTER}1"


def test_markup_escaped_and_plain_text_kept():
    assert safe("[red]x[/]") == "\\[red]x\\[/]"
    assert safe("arn:aws:iam::111122223333:role/Build é") == (
        "arn:aws:iam::111122223333:role/Build é")


def test_safe_lines_keeps_driver_hints_readable():
    from imageprov.cli.render import safe_lines

    text = 'connection failed: Connection refused\n\tIs the server running on "127.0.0.1"?'
    assert safe_lines(text) == (
        'connection failed: Connection refused\n    Is the server running on "127.0.0.1"?')
    assert "\N{REPLACEMENT CHARACTER}" in safe_lines("bell \x07 escape \x1b[31m")


def test_clipped_names_the_length_it_left_out():
    from imageprov.cli.render import clipped

    assert clipped("a" * 512) == "a" * 512
    assert clipped("a" * 5_000_000) == "a" * 512 + "... (5,000,000 characters)"
