"""The seed API's option classes (``DatasetOptions``, ``TrainingOptions``, ``MLflowOptions``) and settings.

The seed documentation's calls stay valid as written; every addition has a default. Options are plain
dataclasses checked by ``validate()`` methods that raise ``TrainConfigError`` naming the bad value, so a
runner can check everything before any heavy work.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from mermaid_data.errors import ConfigError
from mermaid_data.settings import get_settings as get_data_settings
from mermaid_data.snapshot import SnapshotSpec
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mermaid_train.errors import TrainConfigError

DEFAULT_EXPERIMENT = "mermaid-classifier"
DEFAULT_MODEL_NAME = "mermaid-classifier"
#: MLflow's registry stores names in a VARCHAR(256); the timestamp suffix counts.
MODEL_NAME_MAX = 256
TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"
TIMESTAMP_LEN = len("-20250101-120000")
SPLITS = ("images", "points")
CLF_TYPES = ("MLP", "LR")
TRAINERS = ("packed", "minibatch")


class TrainSettings(BaseSettings):
    """Training settings (env vars or ``.env``); the lake and feature tolerance come from mermaid_data."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    experiment_name: str = Field(
        default=DEFAULT_EXPERIMENT,
        validation_alias=AliasChoices("MERMAID_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_NAME"),
    )
    model_name: str = Field(default=DEFAULT_MODEL_NAME, validation_alias="MERMAID_MODEL_NAME")
    runs_dir: str = Field(default="./runs", validation_alias="MERMAID_RUNS_DIR")
    cache_dir: str = Field(default="~/.cache/mermaid-train", validation_alias="MERMAID_TRAIN_CACHE_DIR")
    tracking_timeout_s: float = Field(default=3.0, validation_alias="MERMAID_TRACKING_TIMEOUT_S")


def get_train_settings() -> TrainSettings:
    """Read settings fresh (env vars can change between calls in tests)."""
    return TrainSettings()


@dataclass
class DatasetOptions:
    """What to train on: a snapshot recipe (as in the seed) plus the train/ref/val ratios.

    The recipe fields become a ``mermaid_data`` ``SnapshotSpec``: the runner builds that snapshot (or
    finds it, same recipe -> same ID) and trains from its ID.
    """

    include_mermaid: bool = True
    coralnet_sources_csv: str | Path | None = None
    drop_growthforms: bool = False
    label_rollup_spec_csv: str | Path | None = None
    included_labels_csv: str | Path | None = None
    excluded_labels_csv: str | Path | None = None
    ref_val_ratios: tuple[float, float] = (0.1, 0.1)
    annotation_limit: int | None = None
    missing_features_allowed: float | None = None  # percent; None = MERMAID_MISSING_FEATURES_ALLOWED
    lake: str | None = None  # lake URI; None = MERMAID_LAKE_URI

    def validate(self) -> None:
        from mermaid_train.split import check_ratios

        self.ref_val_ratios = check_ratios(self.ref_val_ratios)
        try:
            self.snapshot_spec().validate()
        except ConfigError as exc:  # re-raised as a training error with the same text
            raise TrainConfigError(exc.problem, where=exc.where, fix=exc.fix) from None

    def snapshot_spec(self, *, name: str = "", message: str = "") -> SnapshotSpec:
        """The snapshot recipe these options describe."""
        return SnapshotSpec(
            include_mermaid=self.include_mermaid,
            coralnet_sources_csv=self.coralnet_sources_csv,
            drop_growthforms=self.drop_growthforms,
            label_rollup_spec_csv=self.label_rollup_spec_csv,
            included_labels_csv=self.included_labels_csv,
            excluded_labels_csv=self.excluded_labels_csv,
            annotation_limit=self.annotation_limit,
            missing_features_allowed=self.missing_features_allowed,
            name=name,
            message=message,
        )

    def missing_allowed_pct(self) -> float:
        if self.missing_features_allowed is not None:
            return float(self.missing_features_allowed)
        return float(get_data_settings().missing_features_allowed)

    def lake_uri(self) -> str:
        return self.lake or get_data_settings().lake_uri


@dataclass
class TrainingOptions:
    """How to train: epochs (seed) plus split mode, seed, classifier and trainer (additions)."""

    epochs: int = 10
    seed: int = 0
    split: Literal["images", "points"] = "images"
    clf_type: Literal["MLP", "LR"] = "MLP"
    trainer: Literal["packed", "minibatch"] = "packed"
    batch_size: int | None = None
    previous_model_locs: tuple[str, ...] = ()

    def validate(self) -> None:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise TrainConfigError(f"epochs {self.epochs!r} must be a positive integer", fix="pass e.g. epochs=10")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise TrainConfigError(f"seed {self.seed!r} must be a non-negative integer", fix="pass e.g. seed=0")
        for name, value, allowed in (("split", self.split, SPLITS), ("clf_type", self.clf_type, CLF_TYPES),
                                     ("trainer", self.trainer, TRAINERS)):
            if value not in allowed:
                raise TrainConfigError(f"{name} {value!r} is not one of {', '.join(allowed)}",
                                       fix=f"pass {name}= one of {', '.join(allowed)}")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise TrainConfigError(f"batch_size {self.batch_size!r} must be a positive integer",
                                   fix="leave it out (default) or pass e.g. 5000")
        if isinstance(self.previous_model_locs, str):
            self.previous_model_locs = (self.previous_model_locs,)
        self.previous_model_locs = tuple(str(p) for p in self.previous_model_locs)


@dataclass(frozen=True)
class AnnotationsSelection:
    """A parsed ``annotations_to_log`` value: everything, one CoralNet source, or one image."""

    kind: Literal["all", "source", "image"]
    value: str = ""

    @property
    def file_name(self) -> str:
        return "annotations_all.csv" if self.kind == "all" else f"annotations_{self.kind}_{self.value}.csv"


_SOURCE_SPEC = re.compile(r"^s([0-9]+)$")
_IMAGE_SPEC = re.compile(r"^i([0-9A-Za-z][0-9A-Za-z_.-]*)$")


def parse_annotations_to_log(spec: str | None) -> AnnotationsSelection | None:
    """``'all'`` | ``'s<source id>'`` | ``'i<image id>'`` | None; anything else is a TrainConfigError."""
    if spec is None:
        return None
    if isinstance(spec, str):
        text = spec.strip()
        if text == "all":
            return AnnotationsSelection("all")
        if m := _SOURCE_SPEC.match(text):
            return AnnotationsSelection("source", str(int(m.group(1))))
        if m := _IMAGE_SPEC.match(text):
            return AnnotationsSelection("image", m.group(1))
    raise TrainConfigError(
        f"annotations_to_log {spec!r} is not 'all', 's<CoralNet source id>', 'i<image id>' or None",
        fix="pass e.g. 'all', 's123' or 'i456' (or leave it out to log the val annotations only)",
    )


def validate_model_name(name: str) -> str:
    """Check a base model name against MLflow's registered-model rules, leaving room for the timestamp."""
    where = f"model name {name!r}"
    fix = ("use letters, digits, spaces, '.', '_' and '-' (no '/', ':' or control characters), "
           f"at most {MODEL_NAME_MAX - TIMESTAMP_LEN} characters")
    if not isinstance(name, str) or not name.strip():
        raise TrainConfigError("the model name is empty", fix=fix)
    if name != name.strip():
        raise TrainConfigError("has leading or trailing spaces", where=where, fix=fix)
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise TrainConfigError("contains control or invisible characters", where=repr(name), fix=fix)
    bad = sorted({c for c in name if c in "/:\\%?#*\"'<>|`"})
    if bad:
        raise TrainConfigError(f"contains {' '.join(repr(c) for c in bad)}", where=where, fix=fix)
    if name in (".", "..") or name.startswith("."):
        raise TrainConfigError("may not start with '.'", where=where, fix=fix)
    if len(name) + TIMESTAMP_LEN > MODEL_NAME_MAX:
        raise TrainConfigError(
            f"is {len(name)} characters; with the date/time suffix it would exceed MLflow's limit of "
            f"{MODEL_NAME_MAX}", where=f"model name {name[:40]!r}…", fix=fix)
    return name


def timestamped(name: str, now: datetime | None = None) -> str:
    """``name`` with the date/time appended, as the seed documents (``my-model-20250131-120000``)."""
    return f"{name}-{(now or datetime.now()).strftime(TIMESTAMP_FORMAT)}"


@dataclass
class MLflowOptions:
    """Where and how a run is tracked. ``model_name`` gets the date/time appended."""

    experiment_name: str | None = None  # None = MERMAID_EXPERIMENT_NAME / MLFLOW_EXPERIMENT_NAME setting
    model_name: str | None = None  # None = MERMAID_MODEL_NAME setting
    annotations_to_log: str | None = None  # 'all' | 's123' | 'i456' | None
    tracking_uri: str | None = None  # None = MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db
    register_model: bool = True

    def resolved_experiment(self) -> str:
        return self.experiment_name if self.experiment_name is not None else get_train_settings().experiment_name

    def resolved_model_name(self) -> str:
        return self.model_name if self.model_name is not None else get_train_settings().model_name

    def validate(self) -> None:
        validate_model_name(self.resolved_model_name())
        parse_annotations_to_log(self.annotations_to_log)
        experiment = self.resolved_experiment()
        if not experiment.strip() or len(experiment) > 500:
            raise TrainConfigError(f"experiment name {experiment[:60]!r} must be 1-500 characters",
                                   fix="pass experiment_name= (or --experiment) with a short name")


def flat_params(
    dataset: DatasetOptions, training: TrainingOptions, mlflow_options: MLflowOptions | None = None
) -> dict[str, Any]:
    """Every option as ``section.name -> value`` (MLflow params; the run's train_summary.yaml)."""
    out: dict[str, Any] = {}
    sections: list[tuple[str, Any]] = [("dataset", dataset), ("training", training)]
    if mlflow_options is not None:
        sections.append(("mlflow", mlflow_options))
    for prefix, obj in sections:
        for key, value in asdict(obj).items():
            if isinstance(value, (tuple, list)):
                value = ",".join(str(v) for v in value) if value else ""
            out[f"{prefix}.{key}"] = "" if value is None else (str(value) if isinstance(value, Path) else value)
    return out


__all__ = [
    "AnnotationsSelection",
    "DatasetOptions",
    "MLflowOptions",
    "TrainSettings",
    "TrainingOptions",
    "flat_params",
    "get_train_settings",
    "parse_annotations_to_log",
    "timestamped",
    "validate_model_name",
]
