"""Detecting test-loss spikes and oscillation in a logged curve (causal: the same rule runs inside
training, in :class:`landscape.monitor.SpikeKeeper`, and afterwards in ``probe spikes``).

The test loss at epoch i is compared with the median of the previous ``window`` values; the robust
deviation is 1.4826·MAD of that window (floored at 1% of the median, so a perfectly flat curve does
not make every wiggle infinite). A spike is a rise of more than ``threshold`` robust deviations *and*
more than ``min_rise`` (relative) above the median; a non-finite loss after finite ones is a spike.
Oscillation: runs of consecutive sign flips of the epoch-to-epoch change, each change at least
``min_amplitude`` of the local level, with at least ``min_flips`` flips.

Pure functions of the numbers (no model, no training code), so the training monitor can use them
without importing the probe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch

MAD_SCALE = 1.4826  # MAD → standard deviation for Gaussian noise


# ================================================================ detection
@dataclass(frozen=True)
class DetectorConfig:
    threshold: float = 5.0
    window: int = 8
    min_history: int = 3
    min_rise: float = 0.1
    floor: float = 0.01
    min_flips: int = 3
    min_amplitude: float = 0.05

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Spike:
    """A test-loss value far above the median of the values before it."""

    epoch: float
    index: int
    test_loss: float
    baseline: float
    scale: float
    score: float

    def to_json(self) -> dict:
        return {"epoch": self.epoch, "test_loss": self.test_loss, "baseline": self.baseline,
                "score": self.score, "scale": self.scale, "index": self.index}


def spike_score(values: Sequence[float], i: int, *, cfg: DetectorConfig = DetectorConfig()) -> Tuple[float, float, float]:
    """``(baseline, scale, score)`` of ``values[i]`` against the ``cfg.window`` finite values before it
    (NaN score when fewer than ``cfg.min_history`` are available; inf for a non-finite value after
    at least one finite value, however short the history: a divergence is always an event)."""
    past = [v for v in values[max(0, i - cfg.window):i] if math.isfinite(v)]
    x = values[i]
    if not past or (len(past) < cfg.min_history and math.isfinite(x)):
        return float("nan"), float("nan"), float("nan")
    # a non-finite loss after any finite one is a divergence: an event even with a short history
    t = torch.tensor(past, dtype=torch.float64)
    base = float(t.median()) if len(past) % 2 else float(t.quantile(0.5))
    mad = float((t - base).abs().quantile(0.5))
    scale = max(MAD_SCALE * mad, cfg.floor * abs(base), 1e-12)
    if not math.isfinite(x):
        return base, scale, math.inf
    return base, scale, (x - base) / scale


def is_spike(values: Sequence[float], i: int, *, cfg: DetectorConfig = DetectorConfig()) -> Optional[Tuple[float, float, float]]:
    """The ``(baseline, scale, score)`` of a spike at ``i``, or None."""
    base, scale, score = spike_score(values, i, cfg=cfg)
    if not score > cfg.threshold:  # NaN-safe
        return None
    x = values[i]
    if math.isfinite(x) and not (x - base) > cfg.min_rise * abs(base):
        return None
    return base, scale, score


def detect_spikes(epochs: Sequence[float], values: Sequence[float], *,
                  cfg: DetectorConfig = DetectorConfig()) -> Tuple[Spike, ...]:
    """Every spike of a test-loss curve (see the module docstring for the rule)."""
    out = []
    for i in range(len(values)):
        hit = is_spike(values, i, cfg=cfg)
        if hit is not None:
            out.append(Spike(epochs[i], i, float(values[i]), *hit))
    return tuple(out)


@dataclass(frozen=True)
class Oscillation:
    """Segments where the test loss alternates up and down by more than ``min_amplitude``."""

    segments: Tuple[dict, ...]
    flip_fraction: float

    def to_json(self) -> dict:
        return {"segments": list(self.segments), "flip_fraction": self.flip_fraction,
                "oscillating": bool(self.segments)}


def detect_oscillation(epochs: Sequence[float], values: Sequence[float], *,
                       cfg: DetectorConfig = DetectorConfig()) -> Oscillation:
    """Runs of ≥ ``cfg.min_flips`` consecutive significant sign flips of the epoch-to-epoch change;
    ``flip_fraction`` = significant flips / adjacent pairs of changes over the whole curve."""
    x = [float(v) for v in values]
    diffs = [x[j + 1] - x[j] for j in range(len(x) - 1)]
    sig = []
    for j, d in enumerate(diffs):
        lo, hi = max(0, j - 2), min(len(x), j + 4)
        level = sorted(abs(v) for v in x[lo:hi] if math.isfinite(v))
        ref = level[len(level) // 2] if level else 0.0
        sig.append(math.isfinite(d) and abs(d) >= cfg.min_amplitude * max(ref, 1e-12))
    flips = [sig[j] and sig[j + 1] and diffs[j] * diffs[j + 1] < 0 for j in range(len(diffs) - 1)]
    segments, j = [], 0
    while j < len(flips):
        if not flips[j]:
            j += 1
            continue
        k = j
        while k + 1 < len(flips) and flips[k + 1]:
            k += 1
        n = k - j + 1
        if n >= cfg.min_flips:
            amps = [abs(diffs[m]) / max(abs(x[m]), 1e-12) for m in range(j, k + 2)]
            seg = x[j:k + 3]
            peak = j + max(range(len(seg)), key=lambda m: seg[m])
            segments.append({"start_epoch": epochs[j], "end_epoch": epochs[k + 2], "flips": n,
                             "relative_amplitude": sorted(amps)[len(amps) // 2],
                             "peak_epoch": epochs[peak], "peak_index": peak})
        j = k + 1
    frac = sum(flips) / len(flips) if flips else 0.0
    return Oscillation(tuple(segments), float(frac))
