"""The CLI's parser, without any service: every option explains itself, ``--version``, and the
completion script knows every command."""

from __future__ import annotations

import argparse
import subprocess

import pytest

from orchestrator.completion import script
from orchestrator.main import build_parser

pytestmark = pytest.mark.unit


def _actions(parser: argparse.ArgumentParser, path: str = "orchestrator"):  # type: ignore[no-untyped-def]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _actions(child, f"{path} {name}")
        else:
            yield path, action


def test_every_option_and_argument_has_help_text() -> None:
    silent = [f"{path} {action.option_strings or action.dest}"
              for path, action in _actions(build_parser())
              if not action.help or action.help == argparse.SUPPRESS]
    assert silent == []


def test_version_prints_the_package_version() -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["--version"])
    assert done.value.code == 0


def test_bash_completion_completes_commands_actions_and_choices() -> None:
    completion = script(build_parser(), "bash")

    def complete(*words: str) -> list[str]:
        quoted = " ".join(f"'{w}'" for w in words)
        probe = (f"{completion}\nCOMP_WORDS=(orchestrator {quoted}); COMP_CWORD={len(words)};"
                 ' _orchestrator; echo "${COMPREPLY[*]}"')
        done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=10)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert complete("st") == ["stack", "stats", "status"]
    assert "down" in complete("stack", "")
    assert complete("tasks", "--status", "") == ["queued", "running", "retrying", "succeeded",
                                                 "dead", "cancelled"]
    assert complete("tasks", "--st") == ["--status", "--stuck"]
    assert script(build_parser(), "zsh").startswith("autoload -U +X bashcompinit")
