"""The videxperts command line: every (sub)command has --help; mistakes give one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from videxperts.pipelines.cli import SUBCOMMANDS, cli

EXE = str(Path(sys.executable).with_name("videxperts"))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=180)


def _command_paths() -> list[tuple[str, ...]]:
    """Every command path under the top-level group, nested groups included."""
    ctx = click.Context(cli)
    paths: list[tuple[str, ...]] = []

    def walk(group: click.Group, prefix: tuple[str, ...]) -> None:
        for name in group.list_commands(ctx):
            cmd = group.get_command(ctx, name)
            assert cmd is not None, f"{' '.join(prefix + (name,))} cannot be loaded"
            paths.append(prefix + (name,))
            if isinstance(cmd, click.Group):
                walk(cmd, prefix + (name,))

    walk(cli, ())
    return paths


def test_every_command_is_listed() -> None:
    paths = _command_paths()
    assert {p[0] for p in paths} == set(SUBCOMMANDS)
    assert {("data", "synth"), ("data", "import"), ("data", "info")} <= set(paths)


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p))
def test_help_exits_zero(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and path[-1] in result.output


def test_console_script_help_and_version() -> None:
    top = _run("--help")
    assert top.returncode == 0 and all(name in top.stdout for name in SUBCOMMANDS)
    assert _run("data", "--help").returncode == 0
    version = _run("--version")
    assert version.returncode == 0 and "videxperts" in version.stdout


def test_unknown_subcommand_fails() -> None:
    top = _run("no-such-command")
    assert top.returncode != 0 and "No such command" in top.stderr
    sub = _run("data", "no-such-command")
    assert sub.returncode == 2 and sub.stdout == ""
    assert sub.stderr.strip().splitlines() == ["videxperts: error: data: no such command 'no-such-command' (choose from synth, import, import-anet, import-karpathy, info)"]


@pytest.mark.parametrize(
    "args",
    [
        ("data", "info", "/nonexistent/dataset"),
        ("data", "import", "/nonexistent/videos", "--captions", "/nonexistent/c.csv", "--out", "/tmp/never-written"),
    ],
)
def test_missing_input_gives_one_line_error(args: tuple[str, ...]) -> None:
    res = _run(*args)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert lines[0].startswith("videxperts: error: /nonexistent/")


def test_data_info_on_a_folder_without_manifest(tmp_path: Path) -> None:
    res = _run("data", "info", str(tmp_path))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "no manifest file" in res.stderr and str(tmp_path) in res.stderr
