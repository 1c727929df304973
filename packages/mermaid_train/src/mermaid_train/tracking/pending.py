"""A trained run whose MLflow logging failed, kept in its run folder until ``mermaid-train log`` logs it.

When logging fails (the server died, the deadline passed), ``MLflowTrainingRunner`` moves the run folder
to ``<runs_dir>/<run name>/`` and writes ``PENDING_FILE`` there: the run's ``RunResult`` (paths relative to
the folder) and where it was to be logged (tracking URI, experiment, model name, the run it had made).
``log_later`` logs that folder as a new run (bounded like every logging call), marks the earlier run
FAILED if it is still RUNNING, and removes the record once logged. The record is a pickle, as pyspacer's
``classifier.pkl`` beside it is: load folders you trust.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, replace
from pathlib import Path

from mermaid_data.progress import Progress, SilentProgress

from mermaid_train.errors import TrainConfigError
from mermaid_train.results import RunResult

PENDING_FILE = ".mlflow-pending.pkl"
PENDING_FORMAT = 1


@dataclass(frozen=True)
class PendingLog:
    """A run waiting to be logged, and where it was to go."""

    result: RunResult  # out_dir ".", files and model_path relative to the folder
    tracking_uri: str
    experiment: str
    model_name: str
    register: bool
    failed_run_id: str | None  # the run the failed attempt made (marked FAILED, or to be)
    error: str
    format: int = PENDING_FORMAT


def _relative(result: RunResult) -> RunResult:
    base = result.out_dir
    return replace(result, out_dir=Path("."),
                   model_path=None if result.model_path is None else Path(result.model_path).relative_to(base),
                   files={name: Path(path).relative_to(base) for name, path in result.files.items()})


def _rebased(result: RunResult, folder: Path) -> RunResult:
    return replace(result, out_dir=folder,
                   model_path=None if result.model_path is None else folder / result.model_path,
                   files={name: folder / path for name, path in result.files.items()})


def save(folder: Path, pending: PendingLog) -> Path:
    """Write the record into ``folder``: where the run's files are now (``pending.result.out_dir``, or the
    partial name the runner renames to it); paths are stored relative to the folder."""
    path = Path(folder) / PENDING_FILE
    record = replace(pending, result=_relative(pending.result))
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL))
    tmp.replace(path)
    return path


def load(folder: Path) -> PendingLog:
    """The record of a kept run folder, its paths made absolute again; ``TrainConfigError`` if there is none."""
    folder = Path(folder).expanduser().absolute()
    path = folder / PENDING_FILE
    fix = ("pass the folder that the failed run's error named (`<runs dir>/<run name>`); a run that was "
           "logged already has nothing to log")
    if not folder.is_dir():
        raise TrainConfigError("no such run folder", where=str(folder), fix=fix)
    if not path.is_file():
        raise TrainConfigError(f"this folder holds no run waiting to be logged (no {PENDING_FILE})",
                               where=str(folder), fix=fix)
    try:
        record = pickle.loads(path.read_bytes())
    except Exception as exc:  # noqa: BLE001 - truncated, or written by another version
        raise TrainConfigError(f"the record of the run cannot be read ({type(exc).__name__}: {exc})",
                               where=str(path), fix="train the run again; its classifier.pkl is in the folder") from None
    if not isinstance(record, PendingLog) or record.format != PENDING_FORMAT:
        raise TrainConfigError("the record of the run is not one this version writes", where=str(path),
                               fix="log it with the mermaid-train version that trained it, or train it again")
    missing = [name for name, rel in record.result.files.items() if not (folder / rel).is_file()]
    if missing:
        raise TrainConfigError(f"the run folder lacks {', '.join(missing[:3])}", where=str(folder),
                               fix="restore the folder as the failed run left it, or train the run again")
    return replace(record, result=_rebased(record.result, folder))


def log_later(folder: Path, *, tracking_uri: str | None = None, experiment: str | None = None,
              progress: Progress | None = None) -> RunResult:
    """Log a kept run folder (module docstring); returns the run with its MLflow fields."""
    from mermaid_train.errors import LoggingFailed
    from mermaid_train.tracking.mlflow import check_tracking, log_run, mark_failed

    progress = progress or SilentProgress()
    pending = load(folder)
    uri = tracking_uri or pending.tracking_uri
    exp = experiment or pending.experiment
    check_tracking(uri, exp)
    result = pending.result
    record = result.out_dir / PENDING_FILE
    saved = record.read_bytes()
    record.unlink()  # not an artifact of the run
    try:
        logged = log_run(result, tracking_uri=uri, experiment=exp, model_name=pending.model_name,
                         register=pending.register, progress=progress)
    except BaseException as exc:
        record.write_bytes(saved)
        if isinstance(exc, LoggingFailed):
            raise LoggingFailed(f"{exc.problem}; the run folder is unchanged", where=exc.where, run_id=exc.run_id,
                                marked_failed=exc.marked_failed,
                                fix=f"once the tracking server answers, run `mermaid-train log {result.out_dir}` "
                                "again") from None
        raise
    if pending.failed_run_id and uri == pending.tracking_uri:
        mark_failed(uri, pending.failed_run_id, f"logged again as run {logged.get('run_id')} by `mermaid-train log`")
    return replace(result, **logged)


__all__ = ["PENDING_FILE", "PendingLog", "load", "log_later", "save"]
