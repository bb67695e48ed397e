"""Numeric options are validated up front, with the same range in every command (issue #19 item 6)."""

import pytest
from click.testing import CliRunner

from landscape.cli import main
from landscape.cli.validate import RULES, Rule, unruled_numeric_options
from landscape.errors import SpecError
from landscape.session import open_session

BAD = [
    (["inspect", "x.pt", "--batch-size", "-5"], "--batch-size"),
    (["inspect", "x.pt", "--batch-size", "0"], "--batch-size"),
    (["inspect", "x.pt", "--subset", "0"], "--subset"),
    (["hessian", "x.pt", "--subset", "-3"], "--subset"),
    (["hessian", "x.pt", "--lr", "0"], "--lr"),
    (["hessian", "x.pt", "--lr", "nan"], "--lr"),
    (["hessian", "x.pt", "--lr", "-0.1"], "--lr"),
    (["hessian", "x.pt", "--tol", "inf"], "--tol"),
    (["sharpness", "x.pt", "--lr", "-1"], "--lr"),
    (["slice", "x.pt", "--batch-size", "-5", "--out", "s.h5"], "--batch-size"),
    (["interpolate", "a.pt", "b.pt", "--batch-size", "0", "--out", "i.h5"], "--batch-size"),
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--batch-size", "-1"], "--batch-size"),
    (["train", "--lr", "nan"], "--lr"),
    (["train", "--beta2", "1"], "--beta2"),
    (["train", "--momentum", "-0.9"], "--momentum"),
    (["probe", "adam-first-step", "--lr", "0.1", "--lr", "0"], "--lr"),
    (["probe", "spikes", "run", "--window", "0"], "--window"),
]


@pytest.mark.parametrize("args,flag", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_numbers_are_one_line_usage_errors(args, flag, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and flag in lines[0], res.output
    assert "out of range" in lines[0] or "is not a valid" in lines[0]
    assert list(tmp_path.iterdir()) == []  # refused before any work or file


def test_every_numeric_option_has_a_rule():
    assert unruled_numeric_options(main) == []


def test_rules_describe_themselves():
    assert RULES["batch_size"].describe() == "1 <= x"
    assert Rule(lo=0, hi=1, hi_open=True).describe() == "0 <= x < 1"
    assert not RULES["lr"].holds(float("nan")) and not RULES["lr"].holds(0.0) and RULES["lr"].holds(1e-9)


@pytest.mark.parametrize("kwargs,needle", [({"batch_size": -5}, "batch_size"), ({"subset": 0}, "subset")])
def test_python_api_refuses_the_same(kwargs, needle):
    with pytest.raises(SpecError, match=needle):
        open_session(None, model="mlp:hidden=4", data="digits", **kwargs)
