"""Synthetic point features in pyspacer's ``ImageFeatures`` file format.

pyspacer (0.14) stores an ``ImageFeatures`` with ``numpy.savez_compressed`` holding four arrays:

- ``meta``: ``np.array([valid_rowcol, npoints, feature_dim])`` (so int64 ``[1, n, 1280]``),
- ``rows`` / ``cols``: uint16 ``[n]``,
- ``feat``: float64 ``[n, feature_dim]``,

and ``ImageFeatures.load(DataLocation('filesystem', path))`` reads it back. ``write_feature_file`` writes
the same zip members (``meta.npy``, ``rows.npy``, ``cols.npy``, ``feat.npy``, deflated) but with a fixed
member timestamp, so the same arrays always give the same bytes (``np.savez_compressed`` stamps the
current time).

Features are class-dependent so that a classifier can learn from them, but far from separable::

    feat = baseline + SIGNAL * (mean[BA] + GF_WEIGHT * mean[GF]) + IMAGE_SIGMA * image_offset + noise

with per-class means drawn once from the seed. BA means are hierarchical (a child's mean is close to its
parent's), so related classes are harder to tell apart than unrelated ones. CoralNet labels that MERMAID
does not map get their own means. Values are rounded to multiples of 1/8 (exact in binary), which keeps the
files small after deflate while staying float64 as pyspacer writes them.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mermaid_data.demo.taxonomy import Taxonomy

__all__ = [
    "FEATURE_DIM",
    "FeatureModel",
    "build_feature_model",
    "read_feature_file",
    "write_feature_file",
]

FEATURE_DIM = 1280  # EfficientNet-B0
SIGNAL = 0.12
GF_WEIGHT = 0.6
IMAGE_SIGMA = 0.25
NOISE_SIGMA = 1.0
QUANTUM = 0.125  # a power of two: rounded values are exact float64 with mostly-zero mantissas
_PARENT_PULL = 0.75
_OWN_SPREAD = 0.66
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True, eq=False)
class FeatureModel:
    """Class means for every BA (then every unmapped CoralNet label) and every GF (+ a zero 'no GF' row)."""

    ba_means: np.ndarray  # (n_ba + n_unmapped_labels, dim)
    gf_means: np.ndarray  # (n_gf + 1, dim); the last row (index -1) is zeros = no growth form
    baseline: np.ndarray  # (dim,)
    dim: int = FEATURE_DIM

    def sample(self, rng: np.random.Generator, ba_index: np.ndarray, gf_index: np.ndarray) -> np.ndarray:
        """Features ``[n, dim]`` (float64, multiples of ``QUANTUM``) for the n points of ONE image.

        ``ba_index`` indexes ``ba_means``; ``gf_index`` indexes ``gf_means`` (-1 = no growth form).
        All points share one image offset (images differ from each other, like real photos).
        """
        n = len(ba_index)
        feat = rng.standard_normal((n, self.dim))
        if NOISE_SIGMA != 1.0:  # pragma: no cover - constant
            feat *= NOISE_SIGMA
        feat += self.baseline
        feat += IMAGE_SIGMA * rng.standard_normal(self.dim)
        feat += SIGNAL * self.ba_means[ba_index]
        feat += (SIGNAL * GF_WEIGHT) * self.gf_means[gf_index]
        feat *= 1.0 / QUANTUM
        np.rint(feat, out=feat)
        feat *= QUANTUM
        return feat


def build_feature_model(taxonomy: Taxonomy, seed: int, *, dim: int = FEATURE_DIM) -> FeatureModel:
    """Draw the class means once from ``seed`` (hierarchical over the BA tree)."""
    rng = np.random.default_rng([seed, 0xFEA7])
    bas = taxonomy.benthic_attributes
    n_unmapped = len(taxonomy.unmapped_labels)
    own = rng.standard_normal((len(bas) + n_unmapped, dim))
    means = np.empty_like(own)
    for ba in bas:  # parents come before their children in the tuple
        if ba.parent_index < 0:
            means[ba.index] = own[ba.index]
        else:
            means[ba.index] = _PARENT_PULL * means[ba.parent_index] + _OWN_SPREAD * own[ba.index]
    means[len(bas) :] = own[len(bas) :]
    gf_means = np.zeros((len(taxonomy.growth_forms) + 1, dim))
    gf_means[:-1] = rng.standard_normal((len(taxonomy.growth_forms), dim))
    baseline = 0.5 * np.abs(rng.standard_normal(dim))
    return FeatureModel(ba_means=means, gf_means=gf_means, baseline=baseline, dim=dim)


def write_feature_file(
    path: Path | str, rows: np.ndarray, cols: np.ndarray, feat: np.ndarray, *, compresslevel: int = 1
) -> int:
    """Write one pyspacer ``ImageFeatures`` file (deterministic bytes); return its size in bytes."""
    feat = np.asarray(feat, dtype=np.float64)
    npoints, feature_dim = feat.shape
    if len(rows) != npoints or len(cols) != npoints:
        raise ValueError(f"rows/cols/feat disagree: {len(rows)}, {len(cols)}, {npoints}")
    arrays = {
        # exactly what ImageFeatures.store() builds
        "meta": np.array([True, npoints, feature_dim]),
        "rows": np.asarray(rows, dtype=np.uint16),
        "cols": np.asarray(cols, dtype=np.uint16),
        "feat": feat,
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, mode="w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            archive.writestr(info, member.getbuffer(), compresslevel=compresslevel)
    data = out.getbuffer()
    Path(path).write_bytes(data)
    return len(data)


def read_feature_file(path: Path | str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, cols, feat)`` of a pyspacer ``ImageFeatures`` file (numpy only, no pyspacer needed)."""
    with np.load(path, allow_pickle=False) as data:
        meta = data["meta"]
        if not meta[0]:
            raise ValueError(f"{path}: legacy feature file without row/col")
        return data["rows"], data["cols"], data["feat"]
