"""Every option of every command says what it does (and `--help` exits 0)."""

from __future__ import annotations

import argparse

import pytest

from timbrelab.cli import _build_parser, main

PARSER = _build_parser()
COMMANDS = next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction)).choices


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_has_help(command, capsys):
    undocumented = [
        action.dest
        for action in COMMANDS[command]._actions
        if not isinstance(action, argparse._HelpAction) and not action.help
    ]
    assert not undocumented, f"timbrelab {command}: options without help: {undocumented}"
    assert main([command, "--help"]) == 0
    assert f"usage: timbrelab {command}" in capsys.readouterr().out
