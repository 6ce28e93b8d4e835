"""The command line as one package: the same help, the same ``-c/--config``, for every subcommand."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from latentd.cli import build_parser
from latentd.cli.common import HelpFormatter, plain

# The subcommands that read a venue config.
CONFIG_READERS = {"run", "render", "check", "config", "schedule", "replay", "send", "status"}


def subcommands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser below ``parser`` (nested ones too), with the words that reach it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from subcommands(sub, (*path, name))


ALL = list(subcommands(build_parser()))
IDS = [" ".join(path) for path, _ in ALL]


def meaningful_default(action: argparse.Action) -> bool:
    default = action.default
    return bool(action.option_strings) and not (
        default is None or default is argparse.SUPPRESS or isinstance(default, bool) or default == ""
    )


def test_every_subcommand_is_walked():
    assert {"run", "schedule", "tempo", "models inspect", "unravel generate", "unravel decode"} <= set(IDS)


@pytest.mark.parametrize(("path", "parser"), ALL, ids=IDS)
def test_help_is_plain_text_and_shows_defaults(path, parser):
    text = parser.format_help()
    assert "``" not in text and ":mod:" not in text and ":func:" not in text
    assert parser.formatter_class is HelpFormatter
    formatter = parser._get_formatter()
    for action in parser._actions:
        shown = formatter._expand_help(action) if action.help else ""
        if meaningful_default(action):
            assert "default" in shown, f"{' '.join(path)} {action.option_strings}: {shown!r}"
        else:
            assert "(default: None)" not in shown and "(default: False)" not in shown


def test_schedule_help_keeps_the_docstring_paragraphs_without_markup(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["schedule", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "latentd schedule: print the venue's timetable" in out
    assert "\n\nEvery line shows the local time" in out
    assert "(default: 7)" in out and "(default: now)" in out


@pytest.mark.parametrize(("path", "parser"), ALL, ids=IDS)
def test_a_venue_config_is_always_dash_c(path, parser):
    config = [a for a in parser._actions if "--config" in a.option_strings]
    if " ".join(path) in CONFIG_READERS:
        assert config, f"{' '.join(path)} takes no -c/--config"
    for action in config:
        assert action.option_strings == ["-c", "--config"] and action.metavar == "FILE"


def test_plain_strips_inline_markup():
    assert (
        plain("``latentd schedule`` and :mod:`latentd.cli` and `x`")
        == "latentd schedule and latentd.cli and x"
    )
