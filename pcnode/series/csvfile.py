"""Series from CSV files, and back: `from_csv`, the Jena climate record, `to_csv`.

One row per reading, a header naming the columns; times as numbers or dates
(`parse_time`), several series told apart by an id column. Errors name the row as its
line in the file (the header is line 1) and the column.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import ConfigError, DataError
from .io import Series, check_series, parse_time

JENA_TIME = "Date Time"
JENA_FORMAT = "%d.%m.%Y %H:%M:%S"


def from_csv(
    path: str | Path,
    time_column: str | None = None,
    id_column: str | None = None,
    columns: Sequence[str] | None = None,
    aux_columns: Sequence[str] = (),
    time_format: str | None = None,
    duplicates: str = "error",
    input_columns: Sequence[str] = (),
) -> Series:
    """Series from a CSV with a header and one row per reading.

    Args:
        time_column: numbers or dates (see `parse_time`); None means rows are 0, 1, 2, ...
        id_column: rows with the same id form one series, in the order they first appear;
            None means the whole file is one series.
        columns: the state columns (default: every column not named otherwise); aux_columns
            (runs from before inputs) follow them.
        input_columns: known inputs, read with every reading, never predicted; they come last.
            Rows at the end of a series that give the inputs and leave every state column
            blank are scheduled inputs: inputs known ahead of the state (a weather
            forecast, a planned set-point), which a forecast reads and training does not
            (`Series.scheduled`).
        duplicates: "error", or "first" to keep the first of readings with equal times.

    Errors name the row as its line in the file (the header is line 1) and the column.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} not found; check the path")
    if duplicates not in ("error", "first"):
        raise ConfigError(f"duplicates must be 'error' or 'first', got '{duplicates}'")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(
            f"{path} is not a UTF-8 CSV file; pass a CSV with a header row, or an .npz holding an array x"
        ) from None
    with io.StringIO(text, newline="") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if not header:
            raise DataError(f"{path} is empty; it needs a header row naming the columns")
        columns_read = _csv_columns(path, header, time_column, id_column, columns, aux_columns, input_columns)
        groups, dates = _csv_rows(path, reader, header, columns_read.names, time_column, id_column, time_format)
    return _csv_series(path, groups, columns_read, dates, id_column, duplicates)


class _CsvColumns(NamedTuple):
    """The value columns a CSV is read into, in the order a `Series` holds them."""

    state: list[str]
    aux: list[str]
    given: list[str]

    @property
    def names(self) -> list[str]:
        return self.state + self.aux + self.given


def _csv_columns(
    path: Path, header: list[str], time_column, id_column, columns, aux_columns, input_columns
) -> _CsvColumns:
    """Which columns hold the state, the auxiliary dims and the known inputs; refuse
    missing columns, none to predict, and a column named as both state and input."""
    special = [c for c in (time_column, id_column) if c is not None]
    aux, given = list(aux_columns), list(input_columns)
    state = list(columns) if columns else [h for h in header if h not in special + aux + given]
    missing = [c for c in special + state + aux + given if c not in header]
    if missing:
        raise DataError(
            f"{path} has no column {', '.join(repr(c) for c in missing)}; its columns are: {', '.join(header)}"
        )
    if not state:
        raise DataError(f"{path} has no value columns besides the time, id and inputs; name them with `columns`")
    both = sorted(set(state + aux) & set(given))
    if both:
        raise DataError(
            f"column {', '.join(repr(c) for c in both)} is named both as state and as a known "
            "input; an input is never predicted, so name it in `input_columns` alone"
        )
    return _CsvColumns(state, aux, given)


def _csv_rows(
    path: Path, reader, header: list[str], names: list[str], time_column, id_column, time_format
) -> tuple[dict[str, tuple[list, list, list]], bool]:
    """The rows of each series (id -> (times, values, line numbers)), and whether the times were dates."""
    pos = [header.index(c) for c in names]
    groups: dict[str, tuple[list, list, list]] = {}
    dates = False
    for line, row in enumerate(reader, start=2):
        if not row or all(not v.strip() for v in row):
            continue
        if len(row) != len(header):
            raise DataError(f"{path} row {line} has {len(row)} fields, the header has {len(header)}")
        key = row[header.index(id_column)].strip() if id_column else ""
        ts, xs, lines = groups.setdefault(key, ([], [], []))
        if time_column is None:
            t = float(len(ts))
        else:
            text = row[header.index(time_column)].strip()
            try:
                t, dates = parse_time(text, time_format)
            except ValueError as e:
                raise DataError(f"{path} row {line}, column '{time_column}': {e}") from None
        values = []
        for c, p in zip(names, pos):
            text = row[p].strip()
            try:
                values.append(float(text) if text else math.nan)
            except ValueError:
                raise DataError(
                    f"{path} row {line}, column '{c}': '{text}' is not a number; fix or drop that row"
                ) from None
        ts.append(t)
        xs.append(values)
        lines.append(line)
    if not groups:
        raise DataError(f"{path} has a header but no rows")
    return groups, dates


def _csv_series(
    path: Path,
    groups: dict[str, tuple[list, list, list]],
    columns: _CsvColumns,
    dates: bool,
    id_column,
    duplicates: str,
) -> Series:
    """Each group's rows checked and packed into a `Series`; trailing rows that give the
    inputs and leave the state blank become its scheduled inputs."""
    names, given = columns.names, columns.given
    series = Series([], [], names, [], aux_dims=len(columns.aux), dates=dates, input_dims=len(given))
    for key, (ts, xs, lines) in groups.items():
        t, x, lines = np.array(ts), np.array(xs, dtype=np.float64).reshape(len(ts), len(names)), np.array(lines)
        if duplicates == "first" and len(t) > 1:
            keep = np.concatenate([[True], np.diff(t) != 0])
            t, x, lines = t[keep], x[keep], lines[keep]
        name = f"'{key}'" if id_column else "(the whole file)"

        def row(r: int, lines=lines) -> str:
            return f"{path} row {lines[r]}"

        n = len(t)
        if given:  # trailing rows with the state blank: scheduled inputs
            known = np.isfinite(x[:, : len(columns.state) + len(columns.aux)]).any(1)
            n = int(np.flatnonzero(known)[-1]) + 1 if known.any() else 0
        check_series(t[:n], x[:n], names, name, row)
        _check_scheduled(
            t[n - 1 :], x[n - 1 :, len(names) - len(given) :], given, name, lambda r, n=n, row=row: row(n - 1 + r)
        )
        series.t.append(t[:n])
        series.x.append(x[:n])
        series.ids.append(key or "0")
        series.scheduled.append((t[n:], x[n:, len(names) - len(given) :]))
    if not any(len(ts) for ts, _ in series.scheduled):
        series.scheduled = []
    return series


def _check_scheduled(t: np.ndarray, u: np.ndarray, columns: list[str], name: str, row: Callable[[int], str]) -> None:
    """Scheduled inputs `u` (S, U) at times t[1:], after the series' last reading at t[0]:
    every input given, times strictly increasing."""
    bad = np.argwhere(~np.isfinite(u[1:]))
    if len(bad):
        r, c = bad[0]
        raise DataError(
            f"{row(r + 1)}, column '{columns[c]}' of series {name} is blank in a row that gives no state "
            "(a scheduled reading): give every known input there, or drop the row"
        )
    if not np.isfinite(t).all() or (np.diff(t) <= 0).any():
        r = int(np.argmax(~np.isfinite(t[1:]) | (np.diff(t) <= 0))) + 1
        raise DataError(
            f"{row(r)}: the time of this scheduled reading of series {name} does not come after the one "
            "before it; times must strictly increase within a series"
        )


def to_csv(series: Series, path: str | Path, time_column: str = "t", id_column: str = "series") -> None:
    """Write series as a CSV that `from_csv(path, time_column, id_column)` reads back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([id_column, time_column, *series.columns])
        for i, key in enumerate(series.ids):
            for ti, xi in zip(*series.with_scheduled(i)):  # scheduled inputs: the state left blank
                w.writerow([key, repr(float(ti)), *("" if np.isnan(v) else repr(float(v)) for v in xi)])


def jena_climate(path: str | Path, columns: Sequence[str] | None = None, input_columns: Sequence[str] = ()) -> Series:
    """The Jena climate record (Max Planck Institute for Biogeochemistry) from a CSV you have.

    The file has a "Date Time" column ("01.01.2009 00:10:00", every 10 minutes) and 14
    readings such as "p (mbar)" and "T (degC)"; `columns` picks some (default: all).
    Nothing is downloaded. Repeated timestamps, which the published file contains, keep
    their first reading. Times are in seconds, so one frame is 600 s. The published wind
    columns hold a few -9999 sentinel values; pick other columns or clean those first.
    """
    return from_csv(
        path,
        time_column=JENA_TIME,
        columns=columns,
        time_format=JENA_FORMAT,
        duplicates="first",
        input_columns=input_columns,
    )
