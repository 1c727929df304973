"""The seed API's option classes (``DatasetOptions``, ``TrainingOptions``, ``MLflowOptions``) and settings.

The seed documentation's calls stay valid as written; every addition has a default. Options are plain
dataclasses checked by ``validate()`` methods that raise ``TrainConfigError`` naming the bad value, so a
runner can check everything before any heavy work.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from mermaid_data.errors import ConfigError
from mermaid_data.settings import get_settings as get_data_settings
from mermaid_data.snapshot import SnapshotSpec
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mermaid_train.errors import TrainConfigError
from mermaid_train.features.cache import DEFAULT_FETCH_WORKERS
from mermaid_train.recipe import Preset, Recipe, preset, with_overrides
from mermaid_train.split.subsample import Subsample

DEFAULT_EXPERIMENT = "mermaid-classifier"
#: MLflow's registry stores names in a VARCHAR(256); the run name is the model name plus the date/time.
MODEL_NAME_MAX = 256
TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"
TIMESTAMP_LEN = len("-20250101-120000")
SPLITS = ("images", "points")
CLF_TYPES = ("MLP", "LR")
TRAINERS = ("packed", "minibatch")
STOP_METRICS = ("ref_loss", "ref_balanced_accuracy")
WEIGHTINGS = ("effective_number", "none")
PACK_DTYPES = ("float32", "float16")


class TrainSettings(BaseSettings):
    """Training settings (env vars or ``.env``); the lake and feature tolerance come from mermaid_data."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    experiment_name: str = Field(
        default=DEFAULT_EXPERIMENT,
        validation_alias=AliasChoices("MERMAID_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_NAME"),
    )
    model_name: str | None = Field(default=None, validation_alias="MERMAID_MODEL_NAME")  # None: from the recipe
    runs_dir: str = Field(default="./runs", validation_alias="MERMAID_RUNS_DIR")
    cache_dir: str = Field(default="~/.cache/mermaid-train", validation_alias="MERMAID_TRAIN_CACHE_DIR")
    tracking_timeout_s: float = Field(default=3.0, validation_alias="MERMAID_TRACKING_TIMEOUT_S")
    # every MLflow request while logging: its timeout and retries, and a deadline for the whole logging
    tracking_request_timeout_s: float = Field(default=20.0, gt=0, validation_alias="MERMAID_TRACKING_REQUEST_TIMEOUT_S")
    tracking_retries: int = Field(default=1, ge=0, validation_alias="MERMAID_TRACKING_RETRIES")
    tracking_deadline_s: float = Field(default=900.0, gt=0, validation_alias="MERMAID_TRACKING_DEADLINE_S")
    fetch_workers: int = Field(default=DEFAULT_FETCH_WORKERS, ge=1, validation_alias="MERMAID_FEATURE_FETCH_WORKERS")


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
    """How to train: a named preset plus any field that overrides it (module ``mermaid_train.recipe``).

    ``epochs`` is the seed's; every other field is an addition. A field left as ``None`` takes the
    preset's value. To switch off something the preset turns on: ``class_weighting='none'``,
    ``early_stopping_patience=0``, ``logit_adjustment='none'``, ``weight_ratio_cap=0``.
    """

    epochs: int | None = None  # pyspacer preset: 10; upstream: up to 40
    seed: int = 0
    split: Literal["images", "points"] = "images"
    clf_type: Literal["MLP", "LR"] = "MLP"
    trainer: Literal["packed", "minibatch"] = "packed"
    batch_size: int | None = None  # MLP: points per optimizer step; LR / stock trainer: rows per partial_fit
    previous_model_locs: tuple[str, ...] = ()
    preset: str = "pyspacer"  # 'pyspacer' | 'upstream'
    hidden_layer_sizes: tuple[int, ...] | None = None
    learning_rate: float | None = None
    alpha: float | None = None  # L2 penalty (sklearn's alpha)
    early_stopping_patience: int | None = None  # epochs without improvement on ref; 0 = off
    early_stopping_metric: Literal["ref_loss", "ref_balanced_accuracy"] | None = None
    class_weighting: Literal["effective_number", "none"] | None = None
    weighting_beta: float | None = None
    weight_ratio_cap: float | None = None  # max / min class weight; 0 = no cap
    logit_adjustment: str | float | None = None  # 'auto' (tau chosen on ref), a tau >= 0, or 'none'
    logit_adjustment_max_accuracy_loss: float | None = None  # ref accuracy 'auto' may give up (0.03)
    subsample: Subsample | str | None = None  # Subsample(...) or 'balanced:N[:M]'
    pack_dtype: Literal["float32", "float16"] | None = None
    blas_threads: int | None = None  # None: choose at the start of training

    def validate(self) -> None:
        self.recipe()
        if isinstance(self.previous_model_locs, str):
            self.previous_model_locs = (self.previous_model_locs,)
        self.previous_model_locs = tuple(str(p) for p in self.previous_model_locs)

    def recipe(self) -> Recipe:
        """The preset with these options applied, every value checked (``TrainConfigError`` otherwise)."""
        if self.preset not in tuple(Preset):
            raise TrainConfigError(f"preset {self.preset!r} is not one of {', '.join(p.value for p in Preset)}",
                                   fix="pass preset='pyspacer' (pyspacer's recipe) or 'upstream' (its current one)")
        _positive_int("epochs", self.epochs, "pass e.g. epochs=10")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise TrainConfigError(f"seed {self.seed!r} must be a non-negative integer", fix="pass e.g. seed=0")
        for name, value, allowed in (("split", self.split, SPLITS), ("clf_type", self.clf_type, CLF_TYPES),
                                     ("trainer", self.trainer, TRAINERS),
                                     ("early_stopping_metric", self.early_stopping_metric, STOP_METRICS),
                                     ("class_weighting", self.class_weighting, WEIGHTINGS),
                                     ("pack_dtype", self.pack_dtype, PACK_DTYPES)):
            if value is not None and value not in allowed:
                raise TrainConfigError(f"{name} {value!r} is not one of {', '.join(allowed)}",
                                       fix=f"pass {name}= one of {', '.join(allowed)}")
        _positive_int("batch_size", self.batch_size, "leave it out (the preset's) or pass e.g. 512")
        _positive_int("blas_threads", self.blas_threads, "leave it out (chosen by a short measurement) or pass 1 or 2")
        hidden = _hidden_layer_sizes(self.hidden_layer_sizes)
        _positive_number("learning_rate", self.learning_rate, "pass e.g. learning_rate=1e-4")
        _positive_number("alpha", self.alpha, "pass e.g. alpha=1e-4", zero_ok=True)
        patience = self.early_stopping_patience
        if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int) or patience < 0):
            raise TrainConfigError(f"early_stopping_patience {patience!r} must be an integer >= 0 (0 = off)",
                                   fix="pass e.g. early_stopping_patience=3")
        beta = self.weighting_beta
        if beta is not None and (isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 < beta < 1):
            raise TrainConfigError(f"weighting_beta {beta!r} must be between 0 and 1 (exclusive)",
                                   fix="pass e.g. weighting_beta=0.9999")
        cap = self.weight_ratio_cap
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, float))
                                or not (cap == 0 or cap >= 1)):
            raise TrainConfigError(f"weight_ratio_cap {cap!r} must be >= 1 (or 0 for no cap)",
                                   fix="pass e.g. weight_ratio_cap=50")
        adjustment = _logit_adjustment(self.logit_adjustment)
        loss = self.logit_adjustment_max_accuracy_loss
        if loss is not None and (isinstance(loss, bool) or not isinstance(loss, (int, float)) or not 0 <= loss <= 1):
            raise TrainConfigError(f"logit_adjustment_max_accuracy_loss {loss!r} must be between 0 and 1",
                                   fix="pass e.g. 0.03 (three points of ref accuracy)")
        subsample = self.subsample
        if isinstance(subsample, str):
            subsample = Subsample.parse(subsample)
        elif subsample is not None:
            if not isinstance(subsample, Subsample):
                raise TrainConfigError(f"subsample {subsample!r} is not a Subsample",
                                       fix="pass Subsample(strategy='balanced', total=N) or 'balanced:N'")
            subsample.validate()
        recipe = with_overrides(preset(self.preset), {
            "epochs": self.epochs, "seed": self.seed, "split": self.split, "clf_type": self.clf_type,
            "trainer": self.trainer, "hidden_layer_sizes": hidden, "learning_rate": self.learning_rate,
            "alpha": self.alpha, "batch_size": self.batch_size, "early_stopping_metric": self.early_stopping_metric,
            "weighting_beta": self.weighting_beta, "logit_adjustment_max_accuracy_loss": loss,
            "subsample": subsample, "pack_dtype": self.pack_dtype, "blas_threads": self.blas_threads,
        })
        changes: dict = {}
        if patience is not None:
            changes["early_stopping_patience"] = patience or None
        if self.class_weighting is not None:
            changes["class_weighting"] = None if self.class_weighting == "none" else self.class_weighting
        if cap is not None:
            changes["weight_ratio_cap"] = float(cap) or None
        if self.logit_adjustment is not None:
            changes["logit_adjustment"] = adjustment
        recipe = replace(recipe, **changes)
        if recipe.trainer == "minibatch":
            _stock_compatible(recipe)
        return recipe


def _hidden_layer_sizes(value) -> tuple[int, ...] | None:
    """A tuple of positive widths from a tuple, a list, an int or ``"500,300,100"``."""
    if value is None:
        return None
    sizes = value
    if isinstance(sizes, str) and re.fullmatch(r"\s*[0-9]+(\s*,\s*[0-9]+)*\s*,?\s*", sizes):
        sizes = tuple(int(v) for v in sizes.split(",") if v.strip())
    elif isinstance(sizes, int) and not isinstance(sizes, bool):
        sizes = (sizes,)
    if (not isinstance(sizes, (tuple, list)) or not sizes
            or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in sizes)):
        raise TrainConfigError(f"hidden_layer_sizes {value!r} must be one or more positive integers",
                               fix="pass e.g. hidden_layer_sizes=(500, 300, 100) or --hidden-layer-sizes 500,300,100")
    return tuple(sizes)


def _positive_int(name: str, value, fix: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise TrainConfigError(f"{name} {value!r} must be a positive integer", fix=fix)


def _positive_number(name: str, value, fix: str, *, zero_ok: bool = False) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0 or (value == 0 and not zero_ok):
        raise TrainConfigError(f"{name} {value!r} must be a {'non-negative' if zero_ok else 'positive'} number",
                               fix=fix)


def _logit_adjustment(value) -> str | float | None:
    if value is None or value == "none":
        return None
    if value == "auto":
        return "auto"
    try:
        tau = float(value)
    except (TypeError, ValueError):
        tau = float("nan")
    if isinstance(value, bool) or not math.isfinite(tau) or tau < 0:
        raise TrainConfigError(f"logit_adjustment {value!r} is not 'auto', 'none' or a tau >= 0",
                               fix="pass logit_adjustment='auto' (tau chosen on the ref set) or e.g. 1.0")
    return tau


def _stock_compatible(recipe: Recipe) -> None:
    """pyspacer's stock trainer runs its own recipe: refuse what it cannot do."""
    stock = preset(Preset.PYSPACER)
    differs = [name for name in ("hidden_layer_sizes", "learning_rate", "alpha", "early_stopping_patience",
                                 "class_weighting", "logit_adjustment", "blas_threads")
               if getattr(recipe, name) != getattr(stock, name)]
    if recipe.preset != Preset.PYSPACER:
        differs.insert(0, f"preset={recipe.preset}")
    if differs:
        raise TrainConfigError(
            f"trainer='minibatch' (pyspacer's stock trainer) runs pyspacer's own recipe; it cannot apply "
            f"{', '.join(differs)}", fix="use trainer='packed' (the default) for other recipes")


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
    """Check a model name against MLflow's registered-model rules, leaving room for the run name's date/time."""
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
            f"is {len(name)} characters; with the run name's date/time suffix it would exceed MLflow's limit of "
            f"{MODEL_NAME_MAX}", where=f"model name {name[:40]!r}…", fix=fix)
    return name


def timestamped(name: str, now: datetime | None = None) -> str:
    """``name`` with the date/time appended: a run's name (``my-model-20250131-120000``), as upstream names runs."""
    return f"{name}-{(now or datetime.now()).strftime(TIMESTAMP_FORMAT)}"


@dataclass
class MLflowOptions:
    """Where and how a run is tracked.

    ``model_name`` is the registered model's name: every run registers a new version of it, and the run is
    named ``<model_name>-<date/time>``. None = the ``MERMAID_MODEL_NAME`` setting, else a name derived
    from the recipe (``mermaid_train.lineage.default_model_name``).
    """

    experiment_name: str | None = None  # None = MERMAID_EXPERIMENT_NAME / MLFLOW_EXPERIMENT_NAME setting
    model_name: str | None = None  # None = MERMAID_MODEL_NAME setting, else derived from the recipe
    annotations_to_log: str | None = None  # 'all' | 's123' | 'i456' | None
    tracking_uri: str | None = None  # None = MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db
    register_model: bool = True

    def resolved_experiment(self) -> str:
        return self.experiment_name if self.experiment_name is not None else get_train_settings().experiment_name

    def resolved_model_name(self, default: str | None = None) -> str | None:
        """The option, else the ``MERMAID_MODEL_NAME`` setting, else ``default`` (the recipe's name)."""
        if self.model_name is not None:
            return self.model_name
        setting = get_train_settings().model_name
        return setting if setting is not None else default

    def validate(self) -> None:
        name = self.resolved_model_name()
        if name is not None:
            validate_model_name(name)
        parse_annotations_to_log(self.annotations_to_log)
        experiment = self.resolved_experiment()
        if not experiment.strip() or len(experiment) > 500:
            raise TrainConfigError(f"experiment name {experiment[:60]!r} must be 1-500 characters",
                                   fix="pass experiment_name= (or --experiment) with a short name")


def flat_params(
    dataset: DatasetOptions, recipe: Recipe, mlflow_options: MLflowOptions | None = None,
    previous_model_locs: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Every option as ``section.name -> value`` (MLflow params; the run's train_summary.yaml).

    The training section is the resolved recipe (the preset with the options applied), so every value
    the run trained with is there, defaults included.
    """
    out: dict[str, Any] = {}
    sections: list[tuple[str, Any]] = [("dataset", dataset)]
    if mlflow_options is not None:
        sections.append(("mlflow", mlflow_options))
    out.update(recipe.params())
    out["training.previous_model_locs"] = ",".join(previous_model_locs)
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
    "Subsample",
    "TrainSettings",
    "TrainingOptions",
    "flat_params",
    "get_train_settings",
    "parse_annotations_to_log",
    "timestamped",
    "validate_model_name",
]
