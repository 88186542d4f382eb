"""Shell completion as README documents it: click's `_VIDEXPERTS_COMPLETE` through the installed entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXE = str(Path(sys.executable).with_name("videxperts"))
README = Path(__file__).resolve().parents[2] / "README.md"


def _complete(words: str, cword: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "_VIDEXPERTS_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    return subprocess.run([EXE], capture_output=True, text=True, timeout=120, env=env)  # noqa: S603


def test_readme_completion_lines_and_completions() -> None:
    text = README.read_text()
    for shell in ("bash", "zsh", "fish"):
        assert f"_VIDEXPERTS_COMPLETE={shell}_source videxperts" in text
    source = subprocess.run([EXE], capture_output=True, text=True, timeout=120,  # noqa: S603
                            env={**os.environ, "_VIDEXPERTS_COMPLETE": "bash_source"})
    assert source.returncode == 0 and "complete -o nosort -F" in source.stdout and "videxperts" in source.stdout
    top = _complete("videxperts do", 1)
    assert top.returncode == 0 and top.stdout.split() == ["plain,doctor"], top.stdout
    sub = _complete("videxperts config ", 2)
    assert {"plain,list", "plain,cp", "plain,show"} <= set(sub.stdout.split()), sub.stdout
