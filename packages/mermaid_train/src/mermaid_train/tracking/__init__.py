"""Where a run is recorded: ``profile`` (time and memory per stage), ``mlflow`` (the tracking server, one
run's params, metrics, artifacts and model, every call bounded in time), ``pending`` (a trained run whose
logging failed, kept to be logged later)."""
