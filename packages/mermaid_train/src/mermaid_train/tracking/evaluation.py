"""MLflow for evaluations: log one as a run linked to the model and the snapshot; find an earlier one.

An evaluation run (``mermaid.run_kind = evaluation``) holds

- params: the model reference (``model.uri``, ``model.key``, ``model.kind``, ``model.registered_name``,
  ``model.registered_version``, ``model.alias``, ``model.source_run_id``, ``model.source_run_name``,
  ``model.training_snapshot_id``), ``eval.rows``, ``snapshot_id``, ``snapshot_content_sha256``,
  ``snapshot_rows``, ``lake`` and the evaluation snapshot's recipe (``mermaid_train.lineage.recipe_params``);
- tags: ``mermaid.run_kind``, ``mermaid.model_key``, ``mermaid.model_uri``, ``mermaid.source_run_id``,
  ``mermaid.snapshot_id``, ``mermaid.snapshot_digest``, ``mermaid.eval_rows``, ``mermaid.evaluation_format``,
  ``mermaid.lake`` and a one-line description;
- metrics (step 0): the evaluation's headline, linked to the model's MLflow 3 logged model (when the model
  is one) and to the snapshot dataset, so the model's page lists them per dataset;
- the snapshot as a dataset input (name = snapshot ID, digest = its ``content_sha256``), context
  ``evaluation``, with the logged model as the run's model input;
- the evaluation folder as artifacts.

It goes to ``experiment`` if given, else the experiment of the model's training run, else the default
experiment (``MERMAID_EXPERIMENT_NAME``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from mermaid_data.progress import Progress, SilentProgress

from mermaid_train.lineage import recipe_params, snapshot_digest

if TYPE_CHECKING:
    from mermaid_train.results import EvaluationResult

RUN_KIND = "evaluation"


def evaluation_tags(result: EvaluationResult) -> dict[str, str]:
    from mermaid_train.evaluation.pipeline import EVALUATION_FORMAT

    ref = result.model
    h = result.headline
    note = (f"Model `{ref.label}` on snapshot `{result.snapshot_id}` ({result.rows} rows, "
            f"{result.counts['scored']:,} scored): accuracy {h['accuracy']:.3f} (known classes "
            f"{h.get('accuracy_known_classes', math.nan):.3f}), balanced accuracy {h['balanced_accuracy']:.3f}; "
            f"{result.counts['unknown_class']:,} rows of {int(h['unknown_classes'])} classes the model does not know.")
    return {
        "mermaid.run_kind": RUN_KIND, "mermaid.model_key": ref.key, "mermaid.model_uri": ref.uri,
        "mermaid.source_run_id": ref.run_id or "", "mermaid.snapshot_id": result.snapshot_id,
        "mermaid.snapshot_digest": snapshot_digest(result.manifest), "mermaid.eval_rows": result.rows,
        "mermaid.evaluation_format": str(EVALUATION_FORMAT), "mermaid.lake": result.lake,
        "mlflow.note.content": note,
    }


def evaluation_params(result: EvaluationResult, lake=None) -> dict[str, Any]:
    params: dict[str, Any] = dict(result.model.params())
    params.update({"eval.rows": result.rows, "snapshot_id": result.snapshot_id,
                   "snapshot_content_sha256": result.manifest.get("content_sha256", ""),
                   "snapshot_rows": str(result.manifest.get("row_count", "")), "lake": result.lake})
    params.update(recipe_params(result.manifest, lake))
    return params


def log_evaluation(result: EvaluationResult, *, tracking_uri: str, experiment: str | None = None,
                   progress: Progress | None = None) -> dict[str, str | None]:
    """Log ``result`` as an evaluation run (module docstring); returns the result's MLflow fields."""
    from mermaid_train.tracking.mlflow import bounded, tracking

    progress = progress or SilentProgress()
    with progress.task(f"log the evaluation to MLflow ({tracking_uri})"), tracking(tracking_uri), \
            bounded():  # URL printing off, every request bounded
        return _log(result, tracking_uri, experiment)


def _log(result: EvaluationResult, uri: str, experiment: str | None) -> dict[str, str | None]:
    import mlflow
    from mermaid_data.lake import Lake
    from mlflow import MlflowClient
    from mlflow.entities import LoggedModelInput, Metric, Param

    from mermaid_train.options import get_train_settings
    from mermaid_train.tracking.mlflow import _now_ms, _param, dataset_of, experiment_id, ui_urls

    client = MlflowClient(tracking_uri=uri)
    name = experiment or _training_experiment(client, result.model.experiment_id) or \
        get_train_settings().experiment_name
    exp_id = experiment_id(uri, name)
    run = client.create_run(exp_id, run_name=result.name, tags=evaluation_tags(result))
    run_id = run.info.run_id
    status = "FAILED"
    dataset = dataset_of(result.lake, result.snapshot_id, result.manifest, result.rows_schema)
    model_id = result.model.model_id
    try:
        params = [Param(k, _param(v)) for k, v in evaluation_params(result, Lake.open(result.lake)).items()]
        for i in range(0, len(params), 100):
            client.log_batch(run_id, params=params[i:i + 100])
        with mlflow.start_run(run_id=run_id):
            mlflow.log_input(dataset, context=RUN_KIND, tags={"rows": result.rows},
                             model=LoggedModelInput(model_id) if model_id else None)
            mlflow.log_artifacts(str(result.out_dir))
        now = _now_ms()
        linked = {"model_id": model_id, "dataset_name": dataset.name, "dataset_digest": dataset.digest} \
            if model_id else {}
        metrics = [Metric(k, float(v), now, 0, run_id=run_id, **linked)
                   for k, v in result.headline.items() if not math.isnan(v)]
        for i in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[i:i + 1000])
        status = "FINISHED"
    finally:
        client.set_terminated(run_id, status=status)
    return {"tracking_uri": uri, "experiment_id": exp_id, "run_id": run_id, **ui_urls(uri, exp_id, run_id)}


def _training_experiment(client, experiment_id: str | None) -> str | None:
    if not experiment_id:
        return None
    try:
        found = client.get_experiment(experiment_id)
    except Exception:  # noqa: BLE001 - gone or unreadable: the default experiment
        return None
    return found.name if found.lifecycle_stage == "active" else None


def find_evaluation(tracking_uri: str, *, model_key: str, snapshot_id: str, digest: str, rows: str = "all"):
    """The latest finished evaluation run of ``model_key`` on this snapshot (same digest, rows, format), or None."""
    from mlflow import MlflowClient

    from mermaid_train.evaluation.pipeline import EVALUATION_FORMAT

    if any("'" in v for v in (model_key, snapshot_id, digest, rows)):
        return None  # not expressible in a filter string: evaluate again
    client = MlflowClient(tracking_uri=tracking_uri)
    ids = [e.experiment_id for e in client.search_experiments(max_results=1000)]
    if not ids:
        return None
    query = (f"tags.`mermaid.run_kind` = '{RUN_KIND}' and tags.`mermaid.model_key` = '{model_key}' and "
             f"tags.`mermaid.snapshot_id` = '{snapshot_id}' and tags.`mermaid.snapshot_digest` = '{digest}' and "
             f"tags.`mermaid.eval_rows` = '{rows}' and tags.`mermaid.evaluation_format` = '{EVALUATION_FORMAT}' "
             "and attributes.status = 'FINISHED'")
    found = client.search_runs(ids, query, order_by=["attributes.start_time DESC"], max_results=1)
    return found[0] if found else None


__all__ = ["RUN_KIND", "evaluation_params", "evaluation_tags", "find_evaluation", "log_evaluation"]
