"""The @result base (landscape.results): generic JSON for frozen dataclasses, ``kind`` first and
registered, reports dispatching on it (older files without ``kind`` still open)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from landscape.errors import LandscapeError
from landscape.results import RESULT_KINDS, dumps, internal, result


@result(kind="test_thing")
class Thing:
    """A result with a tensor kept out of JSON and a renamed field."""

    value: float
    notes: tuple = ()
    vector: torch.Tensor = internal(default=None)
    n: int = dataclasses.field(default=3, metadata={"json": "n_samples"})


@result()
class Plain:
    a: float
    b: tuple = (1, 2)


def test_generic_json_fields_renames_and_internal():
    t = Thing(float("nan"), ("x",), torch.ones(3))
    d = t.to_json()
    assert list(d) == ["kind", "value", "notes", "n_samples"]
    assert d["kind"] == "test_thing" and d["notes"] == ["x"] and d["n_samples"] == 3
    assert math.isnan(d["value"])                       # floats stay floats in to_json ...
    assert json.loads(dumps(t))["value"] == "NaN"       # ... and become strict JSON when written
    assert RESULT_KINDS["test_thing"] is Thing and Thing.RESULT_KIND == "test_thing"
    assert dataclasses.is_dataclass(Thing) and Thing.__dataclass_params__.frozen
    assert Plain(1.5).to_json() == {"a": 1.5, "b": [1, 2]}      # no kind: nothing added
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.value = 1.0


def test_custom_to_json_keeps_its_keys_and_gets_the_kind_first():
    @result(kind="test_custom")
    class Custom:
        x: int

        def to_json(self) -> dict:
            return {"double": 2 * self.x, "kind": "stale"}

    assert Custom(2).to_json() == {"kind": "test_custom", "double": 4}


def test_the_three_ascent_sharpness_results_share_one_base():
    from landscape.objective import Objective
    from landscape.sharpness.adaptive import AdaptiveSharpness, adaptive_sharpness
    from landscape.sharpness.common import AscentSharpness
    from landscape.sharpness.eps import EpsSharpness, eps_sharpness
    from landscape.sharpness.worst_case import WorstCaseSharpness, worst_case_sharpness

    for cls in (EpsSharpness, WorstCaseSharpness, AdaptiveSharpness):
        assert issubclass(cls, AscentSharpness) and "to_json" not in cls.__dict__
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).double()
    obj = Objective(model, torch.randn(30, 4, dtype=torch.float64), torch.randint(0, 3, (30,)))
    shared = ["base_loss", "max_loss", "method", "steps", "restarts", "per_restart_max_loss", "history",
              "final_step"]
    tail = ["evaluations", "perturbation", "seed"]
    head = ["value", "definition", "reference"]
    assert list(eps_sharpness(obj, steps=2, restarts=1).to_json()) == head + ["eps"] + shared + tail
    assert list(worst_case_sharpness(obj, steps=2, restarts=1).to_json()) == (
        head + ["rho", "rho_rule", "m"] + shared + ["delta_norm"] + tail)
    assert list(adaptive_sharpness(obj, steps=2, restarts=1).to_json()) == (
        head + ["rho", "eta"] + shared + ["delta_norm"] + tail)


def test_hessian_and_spike_results_declare_their_kind():
    from landscape.hessian.analyze import HessianReport
    from landscape.probes.spikes import SpikeReport
    from landscape.sharpness.measure import SharpnessComparison, SharpnessRun

    assert RESULT_KINDS["hessian"] is HessianReport and RESULT_KINDS["spikes"] is SpikeReport
    assert RESULT_KINDS["sharpness"] is SharpnessComparison and RESULT_KINDS["sharpness_run"] is SharpnessRun


def test_reports_dispatch_on_kind_and_still_open_files_without_it(tmp_path):
    from landscape.report import build_report
    from tests.report.pages import hessian_json

    old = hessian_json()                              # written before results carried a kind
    new = {"kind": "hessian", **hessian_json()}
    for d in (old, new):
        (tmp_path / "h.json").write_text(json.dumps(d))
        rep = build_report([str(tmp_path / "h.json")])
        assert rep.sections[0].title.startswith("Hessian")
    # the kind decides, not the keys: a spike report that happens to carry "eigenvalues"
    odd = {"kind": "hessian", **hessian_json(), "spikes": []}
    assert build_report([odd]).sections[0].title.startswith("Hessian")
    with pytest.raises(LandscapeError, match="cannot tell what this result is"):
        build_report([{"kind": "no_such_kind", "x": 1}])
