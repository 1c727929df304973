"""Where a run is recorded: ``profile`` (time and memory per stage), ``mlflow`` (the tracking server, one
run's params, metrics, artifacts and model)."""
