"""Cover estimates per image and accuracy per source.

Per-image cover: for image ``i`` and class ``c``, ``e[i, c] = 100 * (predicted share - true share)`` of the
image's points. ``cover_mean_abs_bias_pp`` is the mean over classes of ``|mean_i e[i, c]|`` (systematic
over/under-estimation of a class's cover), ``cover_rmse_pp`` is ``sqrt(mean e²)`` over images and classes;
both in percentage points, over the classes seen in truth or prediction.
"""

from __future__ import annotations

import numpy as np
import polars as pl


def cover(yt, yp, k, images, sources, seen):
    """Per-image class shares, predicted vs true: per-image table, per-class bias/RMSE, headline."""
    codes, first, inverse = np.unique(images, return_index=True, return_inverse=True)
    m = codes.shape[0]
    true_counts = np.bincount(inverse * k + yt, minlength=m * k).reshape(m, k).astype(np.float64)
    pred_counts = np.bincount(inverse * k + yp, minlength=m * k).reshape(m, k).astype(np.float64)
    points = true_counts.sum(axis=1)
    err = 100.0 * (pred_counts - true_counts) / points[:, None]
    bias = err.mean(axis=0)
    rmse = np.sqrt((err**2).mean(axis=0))
    errs = err[:, seen]
    headline = {
        "cover_mean_abs_bias_pp": float(np.abs(bias[seen]).mean()),
        "cover_rmse_pp": float(np.sqrt((errs**2).mean())),
        "cover_image_l1_pp_mean": float((0.5 * np.abs(err).sum(axis=1)).mean()),
        "val_images": float(m),
    }
    correct = np.bincount(inverse, weights=(yt == yp).astype(np.float64), minlength=m)
    per_image = pl.DataFrame(
        {
            "image_id": codes.astype(str),
            "source": sources[first],
            "points": points.astype(np.int64),
            "accuracy": correct / points,
            # half the L1 distance of the share vectors: the share of points whose class would have to
            # change for the predicted cover to equal the true cover, in percentage points
            "cover_l1_pp": 0.5 * np.abs(err).sum(axis=1),
            "cover_max_abs_error_pp": np.abs(err).max(axis=1),
        }
    )
    return per_image, bias, rmse, headline


def per_source(sources: np.ndarray, images: np.ndarray, correct: np.ndarray) -> pl.DataFrame:
    frame = pl.DataFrame({"source": sources, "image_id": images, "correct": correct})
    return (
        frame.group_by("source")
        .agg(
            pl.len().alias("annotations"),
            pl.col("image_id").n_unique().alias("images"),
            pl.col("correct").mean().alias("accuracy"),
        )
        .with_columns(pl.col("annotations").cast(pl.Int64), pl.col("images").cast(pl.Int64))
        .sort("source")
    )


