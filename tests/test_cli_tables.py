"""The tables the command line prints: the end-of-run results and the verify outcomes."""

from __future__ import annotations

import io
import math
from pathlib import Path

from click.testing import CliRunner
from rich.console import Console

from circuits.cli import main, results_table
from circuits.training import EpochRecord


def _records(n: int, *, accuracy: float = 0.9, seconds: float = 0.0123) -> list[EpochRecord]:
    return [EpochRecord(epoch=e, train_loss=1.0 / e, test_loss=1.5 / e, test_accuracy=accuracy,
                        seconds=seconds, examples=1437) for e in range(1, n + 1)]


def _render(records: list[EpochRecord]) -> str:
    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(results_table(records, Path("runs/x")))
    return console.file.getvalue()


def _epochs(text: str) -> list[str]:
    """The first cell of every body row."""
    rows = [line.split("│")[1].strip() for line in text.splitlines() if line.count("│") >= 5]
    return [cell for cell in rows if cell != "epoch"]


def _times(text: str) -> list[str]:
    """The last cell of every body row."""
    rows = [line.split("│")[-2].strip() for line in text.splitlines() if line.count("│") >= 5]
    return [cell for cell in rows if cell != "time"]


def test_a_short_run_lists_every_epoch():
    assert _epochs(_render(_records(12))) == [str(e) for e in range(1, 13)]


def test_elided_epochs_are_marked():
    assert _epochs(_render(_records(40))) == ["1", "2", "3", "4", "5", "…", "36", "37", "38", "39", "40"]


def test_a_fast_epoch_does_not_read_as_zero_seconds():
    assert _times(_render(_records(2, seconds=0.0034))) == ["3.4 ms", "3.4 ms"]
    assert _times(_render(_records(1, seconds=12.5))) == ["12.50 s"]


def test_no_accuracy_column_without_an_accuracy():
    """An autoencoder or a regression has no accuracy: no "nan%" column."""
    text = _render(_records(3, accuracy=math.nan))
    assert "nan" not in text.lower() and "test acc" not in text
    mixed = _records(2)
    mixed[0] = EpochRecord(epoch=1, train_loss=1.0, test_loss=1.0, test_accuracy=math.nan, seconds=0.5,
                           examples=10)
    text = _render(mixed)
    assert "—" in text and "nan" not in text.lower() and "90.00%" in text


def test_verify_table_fits_an_80_column_terminal(repo_root):
    result = CliRunner().invoke(main, ["verify", str(repo_root / "specs" / "fa_skip_digits.toml")],
                                env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert sum(line.count("│ pass") for line in lines) == 4 and "skip" in result.output
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
