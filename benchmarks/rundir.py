"""Run directories of ``multiconvex bench``: reading, checking and writing them so that no record is lost.

A run directory holds

- ``run.json``: the exact command, suite, options, seeds, the case list and the
  environment of the process that started the run;
- ``results.jsonl``: one JSON record per finished case, appended, flushed and fsynced
  as each case finishes, so an interrupted (even ``kill -9``-ed) run loses nothing finished;
  a torn last line left by a kill is closed before the next append, and skipped on reading;
- ``results.csv``: the same records, flat, written at the end.

``run.json`` and ``results.csv`` are replaced atomically. A new run only goes into a new or
empty directory; a directory that holds files but no run is refused (:class:`RunDirError`),
so a user's files are never overwritten. One process at a time writes a run directory: :func:`run_lock`
holds ``.multiconvex.lock`` (:mod:`filelock`) while a run goes on, and a second ``bench`` into it
(a second ``--resume``, say) is refused instead of running every case again. What the options and cases of a run mean is
:mod:`.runner`'s business (:func:`.runner.read_run`); this module checks ``run.json``'s shape only.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import filelock
import numpy as np

__all__ = ["CSV_FIELDS", "RECORD_ID_FIELDS", "LOCK_NAME", "RunDirError", "read_records", "read_run_json",
           "prepare_new_run_dir", "run_lock", "write_json_atomic", "repair_torn_tail", "append_record", "write_csv"]

logger = logging.getLogger("multiconvex.bench")

CSV_FIELDS = ("id", "suite", "problem", "method", "backend", "seed", "status", "objective", "reference", "gap",
              "max_block_gap", "is_partial_minimum", "iterations", "wall_time", "cpu_time", "run_time", "solver_time",
              "build_time", "case_memory_mb", "worker", "error")
#: Fields every record has; a line of results.jsonl without them is not a record of a run.
RECORD_ID_FIELDS = ("id", "problem", "method", "backend", "seed", "status")
#: Fields a record may leave out or set to null, and otherwise holds as a number (the report computes with them).
NUMBER_FIELDS = ("objective", "reference", "gap", "max_block_gap", "iterations", "wall_time", "cpu_time", "run_time",
                 "solver_time", "build_time", "setup_time", "case_memory_mb", "certificate_tolerance")
#: The temporary files behind the atomic replacements of run.json and results.csv (ignored when a directory is
#: checked for emptiness).
_TMP_SUFFIX = ".tmp-multiconvex"
#: The lock file of a run directory (:func:`run_lock`); it stays behind, empty, and is not a user's file.
LOCK_NAME = ".multiconvex.lock"


class RunDirError(Exception):
    """A run directory that cannot be used as asked: it holds a run (no --resume), holds other files, is a
    file, does not exist (--resume, report), or its ``run.json`` / ``results.jsonl`` is damaged."""


# -- a run directory ----------------------------------------------------------------------------------
def read_records(run_dir: str | Path) -> list[dict]:
    """Every record in ``run_dir/results.jsonl``.

    A line that is not JSON (a write torn by a kill) is skipped with a warning: its case has no
    record and runs again on ``--resume``. A line that is JSON but not a record (not an object, or
    without ``id``, ``problem``, ``method``, ``backend``, ``seed``, ``status``) was written by
    something else: :class:`RunDirError` names the line, and nothing is changed.
    """
    path = Path(run_dir) / "results.jsonl"
    records: list[dict] = []
    if not path.exists():
        return records
    if not path.is_file():
        raise RunDirError(f"{path} is not a file: move it away; results.jsonl must be a file this program writes.")
    text = path.read_bytes().decode("utf-8", errors="replace")
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            logger.warning("%s line %d: skipping an unreadable line (a write interrupted by a kill); "
                           "its case runs again on --resume", path, lineno)
            continue
        if not isinstance(record, dict):
            raise RunDirError(f"{path} line {lineno} is a JSON {type(record).__name__}, not a record object: "
                              "delete or fix that line (its case then runs again on --resume).")
        missing = [k for k in RECORD_ID_FIELDS if k not in record]
        if missing or not isinstance(record["id"], str):
            raise RunDirError(f"{path} line {lineno} is not a benchmark record (no {', '.join(missing) or 'id'}): "
                              "delete or fix that line (its case then runs again on --resume).")
        bad = _bad_field(record)
        if bad:
            raise RunDirError(f"{path} line {lineno} is not a benchmark record as this program writes it ({bad}): "
                              "delete or fix that line (its case then runs again on --resume).")
        records.append(record)
    return records


def _bad_field(record: dict) -> str | None:
    """What makes ``record`` unusable to the report (a field of the wrong type), or None."""
    for key in ("id", "problem", "method", "backend", "status"):
        if not isinstance(record[key], str):
            return f"{key} is a {type(record[key]).__name__}, not a string"
    if isinstance(record["seed"], bool) or not isinstance(record["seed"], int):
        return f"seed is {record['seed']!r}, not an integer"
    for key in NUMBER_FIELDS:
        value = record.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f"{key} is {value!r}, not a number or null"
    trajectory = record.get("trajectory")
    if trajectory is not None and not (isinstance(trajectory, list) and all(
            isinstance(p, list) and len(p) == 2 and all(v is None or (isinstance(v, (int, float)) and
                                                                      not isinstance(v, bool)) for v in p)
            for p in trajectory)):
        return "trajectory is not a list of [time, objective] pairs"
    for key in ("error", "worker", "message", "reference_note"):
        if record.get(key) is not None and not isinstance(record[key], str):
            return f"{key} is a {type(record[key]).__name__}, not a string or null"
    return None



def read_run_json(run_dir: str | Path) -> dict:
    """``run_dir/run.json`` as a JSON object with ``options`` (an object) and ``cases`` (a list); the
    options themselves are checked by :func:`.runner.read_run`."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise RunDirError(f"{run_dir} does not exist: give the --out directory of a `multiconvex bench` run.")
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir} is a file, not a run directory: give the --out directory of a "
                          "`multiconvex bench` run.")
    path = run_dir / "run.json"
    if not path.is_file():
        raise RunDirError(f"{run_dir} holds no benchmark run (no run.json); run `multiconvex bench --out {run_dir}`.")
    try:
        meta = json.loads(path.read_bytes().decode("utf-8", errors="replace"))
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path} is damaged (not JSON: {exc}): restore it, or start a new run with another "
                          "--out.") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("options"), dict) \
            or not isinstance(meta.get("cases"), list) or not isinstance(meta.get("sessions", []), list) \
            or not all(isinstance(s, dict) for s in meta.get("sessions", [])):
        raise RunDirError(f"{path} is not the run.json of a multiconvex bench run (it needs 'options' and "
                          "'cases'): restore it, or start a new run with another --out.")
    odd = next((c for c in meta["cases"] if not isinstance(c, str)), None)
    if odd is not None or len(set(meta["cases"])) < len(meta["cases"]):
        what = f"a case that is not an id ({odd!r})" if odd is not None else "a case twice"
        raise RunDirError(f"{path} lists {what}: restore it, or start a new run with another --out.")
    return meta


def prepare_new_run_dir(run_dir: Path) -> None:
    """Create ``run_dir`` for a new run; refuse a file, an existing run, or a directory of other files."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"--out {run_dir} is a file, not a directory: choose a new or empty directory.")
    if run_dir.is_dir():
        if (run_dir / "run.json").exists() or (run_dir / "results.jsonl").exists():
            raise RunDirError(f"{run_dir} already holds results: pass --resume to finish that run, "
                              "or choose another --out.")
        others = sorted(p.name for p in run_dir.iterdir() if not p.name.endswith(_TMP_SUFFIX) and p.name != LOCK_NAME)
        if others:
            shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
            raise RunDirError(f"{run_dir} is not empty ({shown}) and holds no multiconvex run: choose a new or "
                              "empty directory for --out (nothing was written).")
    run_dir.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock while a run writes it; :class:`RunDirError` at once when another process holds it."""
    path = run_dir / LOCK_NAME
    lock = filelock.FileLock(path, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise RunDirError(f"{run_dir} is in use: another `multiconvex bench` is writing it (it holds {path}). Wait "
                          "for that run to end (or stop it), then --resume; two runs in one directory would run "
                          "and record every case twice.") from None
    try:
        yield
    finally:
        lock.release()


def _temporary(path: Path, mode: str, **kwargs: Any):
    """A new file beside ``path`` (a unique name: two writers never share it), for an atomic replacement, with the
    permissions an ``open`` would give it (``mkstemp`` makes it 0600, which ``os.replace`` would keep)."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_TMP_SUFFIX)
    umask = os.umask(0)
    os.umask(umask)
    if hasattr(os, "fchmod"):  # POSIX; elsewhere mkstemp's mode is the platform's default
        os.fchmod(fd, 0o666 & ~umask)
    return Path(name), os.fdopen(fd, mode, **kwargs)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` through a temporary file and ``os.replace``: never half-written."""
    tmp, fh = _temporary(path, "w")
    try:
        with fh:
            fh.write(json.dumps(obj, indent=2, default=str))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def repair_torn_tail(path: Path) -> bool:
    """End ``path`` with a newline if a kill tore its last line (the fragment stays, as an unreadable line).

    Returns whether a repair was needed. The next record then starts on its own line instead of
    being glued to the fragment (which would lose both).
    """
    if not path.exists() or path.stat().st_size == 0:
        return False
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return False
    with path.open("ab") as fh:
        fh.write(b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    logger.warning("%s: closed a torn last line (a write interrupted by a kill); its case runs again", path)
    return True


def append_record(fh: Any, record: dict) -> None:
    """One record as one line: written, flushed and fsynced before the next case is reported."""
    fh.write(json.dumps(record, default=_json_default) + "\n")
    fh.flush()
    os.fsync(fh.fileno())


def write_csv(run_dir: str | Path, records: list[dict]) -> Path:
    path = Path(run_dir) / "results.csv"
    tmp, fh = _temporary(path, "w", newline="")
    try:
        with fh:
            w = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
            w.writeheader()
            for r in records:
                w.writerow({k: r.get(k) for k in CSV_FIELDS})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path

def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    return str(o)
