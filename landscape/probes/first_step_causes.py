"""Candidate causes of a failed first Adam step, each measured and given a verdict.

The first-step probe (:mod:`landscape.probes.adam_first_step`) measures, for Adam and SGD from the
same start, right after step 1 and at the end of the follow-up steps: softmax saturation, the
full-set gradient norm, the logit scale, the between-sample share of the logits' variance, dead
units (BatchNorm in eval mode), the loss along the step with its quadratic model, and the
"amplified coordinates" experiment (the first step re-applied to only the small-gradient
coordinates, and to only the large ones). This module turns those numbers into causes
``{name, supported, evidence, numbers}``, each with a stated rule, and one sentence naming the
supported ones. The rules (constants below) are deliberately simple thresholds on measured
quantities; ``numbers`` holds every quantity a rule used, so a reader can apply another rule.

- ``softmax_saturation``: at the end most samples (≥ ``SATURATION_SHARE``) have a largest softmax
  probability above 1 − 10⁻⁴, the full-set gradient fell by ≥ 1/``GRAD_VANISHED`` from its value at
  the start, and the run does not train again. Under softmax-MSE the gradient through a saturated
  softmax is ≈ 0, so nothing can move again; cross-entropy's gradient on a confidently wrong
  sample does not vanish, so under CE this rule fails on the gradient.
- ``output_collapse``: at the end the between-sample share of the logits' variance is below
  ``COLLAPSE_SHARE`` and below ``COLLAPSE_DROP`` times its value at the start: every sample gets
  nearly the same output. (At a random initialisation the class offsets of the read-out can
  already dominate the logits' variance, e.g. a share of 0.06 on the digits CNN, hence the drop.)
- ``dead_units``: some ReLU layer has ≥ ``DEAD_LAYER`` of its units dead on the whole evaluation
  set (BatchNorm eval mode) right after step 1 or at the end, ``DEAD_RISE`` more than at the start.
- ``amplified_coordinates`` (the study's conjecture): the full first step raised the loss and the
  small-gradient coordinates alone account for at least ``SMALL_SHARE`` of that rise.
- ``curvature_overshoot``: along the step Δ the quadratic model predicts a rise,
  ΔᵀHΔ / (−gᵀΔ) > 2 (for SGD, Δ = −ηg, this is η·λ along the gradient vs 2), and the loss rose.
- ``no_recovery``: after the follow-up steps the run does not train (loss below the start and
  accuracy 5 points above the start and the majority-class rate, see ``_recovered``).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

SATURATION_SHARE = 0.5
GRAD_VANISHED = 1e-2
COLLAPSE_SHARE = 0.05
COLLAPSE_DROP = 0.1
DEAD_LAYER = 0.5
DEAD_RISE = 0.25
SMALL_SHARE = 0.5
OVERSHOOT = 2.0

CAUSES = ("softmax_saturation", "output_collapse", "dead_units", "amplified_coordinates",
          "curvature_overshoot", "no_recovery")


def _g(x: Optional[float], nd: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return f"{x:.{nd}g}"


def _cause(name: str, supported: bool, evidence: str, numbers: Mapping[str, Any]) -> dict:
    return {"name": name, "supported": bool(supported), "evidence": evidence, "numbers": dict(numbers)}


def softmax_saturation(adam: Any, sgd: Any) -> dict:
    """Most samples saturated at the end, the gradient vanished, and no recovery."""
    sat, g = adam.saturation, adam.grad_norm
    drop = g["end"] / g["before"] if g["before"] > 0 else math.nan
    ok = sat["end"] >= SATURATION_SHARE and drop <= GRAD_VANISHED and not adam.recovered
    ev = (f"{sat['end']:.0%} of samples have a largest softmax probability > 1 − 1e-4 at the end "
          f"({sat['after_step']:.0%} right after step 1; SGD {sgd.saturation['end']:.0%}); full-set ‖∇L‖ "
          f"{_g(g['before'])} → {_g(g['after'])} after step 1 → {_g(g['end'])} at the end (×{_g(drop, 2)}); "
          f"max|logit| {_g(adam.logit_scale['end']['max'])}")
    return _cause("softmax_saturation", ok, ev, {"saturation_end": sat["end"], "saturation_after_step": sat["after_step"],
                                                 "grad_norm_ratio": drop, "rule": f"saturation_end ≥ {SATURATION_SHARE} and "
                                                 f"grad_norm end/before ≤ {GRAD_VANISHED} and not recovered"})


def output_collapse(adam: Any, sgd: Any, before: float) -> dict:
    """The logits no longer depend on the input at the end."""
    oc = adam.output_collapse
    ok = oc["end"] < COLLAPSE_SHARE and oc["end"] < COLLAPSE_DROP * before
    ev = (f"between-sample share of the logits' variance {_g(before)} at the start → {_g(oc['after_step'])} "
          f"after step 1 → {_g(oc['end'])} at the end (SGD {_g(sgd.output_collapse['end'])}; below "
          f"{COLLAPSE_SHARE:g} and {COLLAPSE_DROP:g}× the start: the output barely depends on the input)")
    return _cause("output_collapse", ok, ev, {"before": before, "after_step": oc["after_step"], "end": oc["end"],
                                              "rule": f"end < {COLLAPSE_SHARE} and end < {COLLAPSE_DROP}·before"})


def _worst_layer(du: Mapping[str, Any], init: Mapping[str, Any]) -> Optional[dict]:
    start = {r["site"]: r["fraction"] for r in init.get("layers", [])}
    best = None
    for r in du.get("layers", []):
        f = r["fraction"]
        if not math.isfinite(f):
            continue
        rise = f - start.get(r["site"], 0.0)
        if best is None or (f, rise) > (best["fraction"], best["rise"]):
            best = {"site": r["site"], "fraction": f, "units": r["units"], "rise": rise,
                    "init": start.get(r["site"], 0.0)}
    return best


def dead_units(adam: Any, sgd: Any, init: Mapping[str, Any]) -> dict:
    """A ReLU layer mostly dead on the whole set after step 1 or at the end (BN eval)."""
    du = adam.dead_units
    rows = []
    for when in ("after_step", "end"):
        w = _worst_layer(du[when], init)
        if w is not None:
            rows.append((when, w))
    if not rows:
        return _cause("dead_units", False, "the model has no ReLU", {"rule": "no ReLU"})
    ok = any(w["fraction"] >= DEAD_LAYER and w["rise"] >= DEAD_RISE for _, w in rows)
    when, w = max(rows, key=lambda r: (r[1]["fraction"] >= DEAD_LAYER and r[1]["rise"] >= DEAD_RISE,
                                       r[1]["fraction"]))
    label = "right after step 1" if when == "after_step" else "at the end"
    ev = (f"{w['site']}: {w['fraction']:.0%} of its {w['units']} units dead on the whole set {label} "
          f"(at the start {w['init']:.0%}); overall {du['after_step']['overall']:.0%} after step 1, "
          f"{du['end']['overall']:.0%} at the end (SGD {sgd.dead_units['end']['overall']:.0%}; BatchNorm in eval mode)")
    return _cause("dead_units", ok, ev, {"site": w["site"], "fraction": w["fraction"], "when": when,
                                         "init": w["init"], "overall_after_step": du["after_step"]["overall"],
                                         "overall_end": du["end"]["overall"],
                                         "rule": f"a layer ≥ {DEAD_LAYER} dead and ≥ {DEAD_RISE} above its start"})


def amplified_coordinates(adam: Any) -> dict:
    """Does the first step's loss rise come from the small-gradient coordinates?"""
    ex = adam.amplified_experiment
    rise, small, large = ex["rise_full"], ex["rise_small_only"], ex["rise_large_only"]
    ok = rise > 0 and small >= SMALL_SHARE * rise
    ev = (f"re-running the first step on only the {ex['small_fraction']:.1%} coordinates with |g| < "
          f"{ex['threshold']:.2g}·max|g| (‖Δ‖ {_g(ex['norm_small_only'])}) changes the loss by {small:+.3g}, on only "
          f"the others (‖Δ‖ {_g(ex['norm_large_only'])}) by {large:+.3g}; the full step by {rise:+.3g}")
    return _cause("amplified_coordinates", ok, ev, {**ex, "rule": f"rise_full > 0 and rise_small_only ≥ "
                                                                  f"{SMALL_SHARE}·rise_full"})


def curvature_overshoot(adam: Any, sgd: Any) -> dict:
    """The quadratic model along the step predicts a rise (ΔᵀHΔ/(−gᵀΔ) > 2) and the loss rose."""
    q, eta_lam = _overshoot(adam), adam.slice.get("eta_lambda_along_step", math.nan)
    rose = adam.slice["actual_change"] > 0
    ok = q > OVERSHOOT and rose
    ev = (f"along Adam's step ΔᵀHΔ/(−gᵀΔ) = {_g(q)} (> 2: the quadratic model predicts a rise), "
          f"η·λ along the step {_g(eta_lam)}; the loss changed by {adam.slice['actual_change']:+.3g} "
          f"(quadratic model {adam.slice['predicted_change']:+.3g}); SGD: η·λ along its step {_g(_overshoot(sgd))}")
    return _cause("curvature_overshoot", ok, ev, {"overshoot": q, "eta_lambda_along_step": eta_lam,
                                                  "sgd_overshoot": _overshoot(sgd),
                                                  "actual_change": adam.slice["actual_change"],
                                                  "predicted_change": adam.slice["predicted_change"],
                                                  "rule": f"overshoot > {OVERSHOOT} and the loss rose"})


def _overshoot(r: Any) -> float:
    s = r.slice
    slope, curv = s["slope"], s["curvature"]
    if slope < 0:
        return curv / -slope
    return math.inf if curv > 0 or slope > 0 else math.nan


def no_recovery(adam: Any, sgd: Any, steps: int, majority: float) -> dict:
    """The run does not train again within the follow-up steps."""
    c, cs = adam.curve, sgd.curve
    ev = (f"after {steps} steps loss {_g(c['loss'][0], 4)} → {_g(c['loss'][-1], 4)}, accuracy "
          f"{c['acc'][0]:.2f} → {c['acc'][-1]:.2f} (majority class {majority:.2f}); SGD: loss {_g(cs['loss'][-1], 4)}, "
          f"accuracy {cs['acc'][-1]:.2f}")
    return _cause("no_recovery", not adam.recovered, ev, {"loss_end": c["loss"][-1], "acc_end": c["acc"][-1],
                                                          "majority": majority, "steps": steps})


def adam_causes(adam: Any, sgd: Any, *, steps: int, majority: float, collapse_before: float,
                dead_init: Mapping[str, Any]) -> List[dict]:
    """Every cause (module docstring) for Adam's run, in a fixed order."""
    return [softmax_saturation(adam, sgd), output_collapse(adam, sgd, collapse_before),
            dead_units(adam, sgd, dead_init), amplified_coordinates(adam), curvature_overshoot(adam, sgd),
            no_recovery(adam, sgd, steps, majority)]


def cause_phrase(c: Mapping[str, Any], adam: Any) -> str:
    """A supported cause in a few words with its numbers (for sentences and summaries)."""
    n = c["numbers"]
    name = c["name"]
    if name == "softmax_saturation":
        g = adam.grad_norm
        return (f"softmax saturation ({n['saturation_end']:.0%} of samples with max p > 1 − 1e-4, max|logit| "
                f"{_g(adam.logit_scale['end']['max'])}, ‖∇L‖ {_g(g['before'], 2)} → {_g(g['end'], 2)})")
    if name == "output_collapse":
        return f"output collapse (between-sample share of logit variance {_g(n['before'], 2)} → {_g(n['end'], 2)})"
    if name == "dead_units":
        when = "after step 1" if n["when"] == "after_step" else "at the end"
        return f"dead units ({n['fraction']:.0%} of {n['site']} dead {when})"
    if name == "amplified_coordinates":
        return (f"amplified coordinates (the {n['small_fraction']:.0%} small-gradient coordinates alone raise the "
                f"loss by {n['rise_small_only']:.3g} of the step's {n['rise_full']:.3g})")
    if name == "curvature_overshoot":
        return f"curvature overshoot (ΔᵀHΔ/(−gᵀΔ) = {_g(n['overshoot'])} > 2)"
    return name


def mechanism(causes: Sequence[Mapping[str, Any]], adam: Any, *, lr: float, loss: str, steps: int) -> str:
    """One sentence naming the supported causes with their numbers."""
    by: Dict[str, Mapping[str, Any]] = {c["name"]: c for c in causes}
    named = [cause_phrase(c, adam) for c in causes if c["supported"] and c["name"] != "no_recovery"]
    if by["no_recovery"]["supported"]:
        head = (f"Adam at lr {lr:g} under {loss} does not train again within {steps} steps "
                f"(accuracy {adam.curve['acc'][-1]:.2f})")
        return head + (": " + "; ".join(named) if named else ": none of the measured causes is supported") + "."
    head = f"Adam at lr {lr:g} under {loss} trains again within {steps} steps (accuracy {adam.curve['acc'][-1]:.2f})"
    return head + ("; supported nonetheless: " + "; ".join(named) if named else "; no cause of failure is supported") + "."
