"""The first sheet of an ``.xlsx`` metadata file as a header and rows (openpyxl)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anaus_pl.data.layouts.base import LayoutError


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[dict[str, Any]]


def read_table(path: Path) -> Table:
    """Header = the first non-empty row; rows = every later non-empty row keyed by header text."""
    try:
        import openpyxl

        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except ImportError as error:
        raise LayoutError(f"{path}: reading .xlsx needs openpyxl (pip install openpyxl)") from error
    except Exception as error:  # openpyxl raises zipfile/KeyError/... for broken files
        raise LayoutError(f"{path}: not a readable .xlsx file ({error}); re-download it") from error
    try:
        lines = [
            row
            for row in workbook.worksheets[0].iter_rows(values_only=True)
            if any(cell is not None and str(cell).strip() for cell in row)
        ]
    finally:
        workbook.close()
    if not lines:
        raise LayoutError(f"{path}: the first sheet is empty")
    header = [str(cell).strip() if cell is not None else f"column{i}" for i, cell in enumerate(lines[0])]
    return Table(header, [dict(zip(header, row)) for row in lines[1:]])
