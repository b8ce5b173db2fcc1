"""The README's examples run as written, and its shell commands survive a shell."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)


PYTHON_BLOCKS = _blocks("python")


def test_the_readme_has_python_examples():
    assert PYTHON_BLOCKS


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_python_example_runs_as_written(index, repo_root, tmp_path, monkeypatch, capsys):
    """Each ```python block runs in a fresh namespace from a folder holding the repo's specs/."""
    (tmp_path / "specs").symlink_to(repo_root / "specs", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    exec(compile(PYTHON_BLOCKS[index], f"README.md python block {index}", "exec"), {"__name__": "__readme__"})
    assert capsys.readouterr().out.strip(), "the example prints what it computes"


def _set_arguments(text: str) -> list[str]:
    """Every ``--set VALUE`` written in backticks in ``text``, as typed (quotes kept)."""
    return [m for code in re.findall(r"`([^`\n]*--set [^`\n]*)`", text)
            for m in re.findall(r"--set (\S+)", code)]


def test_set_arguments_are_quoted_where_a_shell_needs_it():
    """``--set projections.x->h1.init=he`` unquoted makes bash write a file named ``h1.init=he``."""
    arguments = _set_arguments(README.read_text(encoding="utf-8"))
    assert any("->" in a for a in arguments), "the README shows how to address a projection"
    for argument in arguments:
        if any(c in argument for c in "<>|;&()"):
            assert argument[0] in "'\"", f"README: --set {argument} needs quotes"
        assert len(shlex.split(argument)) == 1, argument
