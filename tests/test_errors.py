"""Fields in the library, flags in the CLI (issue #17 item 5).

The library's errors name settings by their config field (``top_k``), so a Python caller reads
the names it passed; the CLI renders the same error with each field's flag (``--top-k``).
"""

import ast
import pickle
import re
import string
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from landscape.cli import FIELD_ALIASES, flag_namer, main
from landscape.errors import (
    CheckpointError,
    CheckpointOptionError,
    Field,
    LandscapeError,
    OptionError,
    Phrase,
    SpecError,
    SpecOptionError,
)

PACKAGE = Path(__file__).resolve().parent.parent / "landscape"
TEMPLATE_CALLS = ("OptionError", "SpecOptionError", "CheckpointOptionError", "Phrase")
FLAG = re.compile(r"--[a-z]")
# Advice to run another command may spell that command's flag: "(run `landscape hessian --density`)".
ADVICE = re.compile(r"`landscape [a-z -]+--[a-z-]+[^`]*`")


# ------------------------------------------------------------------ the mechanism
def test_fields_render_as_python_names_or_through_a_mapping():
    err = OptionError("{top_k} {value} exceeds the {dim} parameters", value=9, dim=8)
    assert str(err) == "top_k 9 exceeds the 8 parameters"
    assert err.fields == ("top_k",)
    assert err.render(lambda f: "--" + f.replace("_", "-")) == "--top-k 9 exceeds the 8 parameters"
    assert isinstance(err, LandscapeError)
    plain = LandscapeError("no fields here {x}")
    assert plain.fields == () and plain.render(lambda f: "!") == "no fields here {x}"


def test_values_keep_their_formats_and_braces():
    err = OptionError("{kind} {value!r}: range [{lo:g}, {hi:.2f}] {{literal}}", value="a{b}", lo=1e-7, hi=2)
    assert str(err) == "kind 'a{b}': range [1e-07, 2.00] {literal}"
    assert err.fields == ("kind",)


def test_fields_chosen_by_the_caller_phrases_and_quoted_errors_render_alike():
    inner = OptionError("{model} does not fit")
    label = Phrase("{direction_file} {path}", path="d.pt")
    err = SpecOptionError("{where}: {exc}; {name} and {trust}", where=label, exc=inner, name=Field("yrange"))
    assert str(err) == "direction_file d.pt: model does not fit; yrange and trust"
    assert err.fields == ("direction_file", "model", "yrange", "trust")
    assert err.render(str.upper) == "DIRECTION_FILE d.pt: MODEL does not fit; YRANGE and TRUST"


def test_spec_and_checkpoint_variants_are_caught_as_before():
    assert isinstance(SpecOptionError("{data}"), SpecError)
    assert isinstance(CheckpointOptionError("{model}"), CheckpointError)
    assert isinstance(SpecOptionError("{data}"), OptionError)


def test_an_error_pickles_with_its_fields():  # slices broadcast rank 0's error to every rank
    err = CheckpointOptionError("{p} holds no weights; pass {checkpoint_key}", p=Path("a.pt"))
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is CheckpointOptionError and back.fields == ("checkpoint_key",)
    assert back.render(lambda f: "--checkpoint-key") == "a.pt holds no weights; pass --checkpoint-key"


@pytest.mark.parametrize("template", ["{top_k!r} bad", "{top_k:>5} bad", "{} bad", "{0} bad"])
def test_a_field_with_a_format_is_a_bug(template):
    with pytest.raises(ValueError):
        OptionError(template)


# ------------------------------------------------------------------ the CLI's mapping
@pytest.mark.parametrize("argv,field,flag", [
    (["hessian", "x.pt"], "top_k", "--top-k"),
    (["hessian", "x.pt"], "trace", "--trace"),             # click name do_trace: the fallback spells it
    (["slice", "x.pt"], "eval_batch_size", "--batch-size"),    # alias: SliceConfig.eval_batch_size
    (["probe", "adam-first-step"], "eval_batch_size", "--eval-batch-size"),  # the invoked command first
    (["interpolate", "a", "b"], "alphas", "--range"),          # alias: InterpolateConfig.alphas
    (["slice", "x.pt"], "xrange", "--range"),
    (["train"], "out_dir", "--out"),
    (["train"], "every", "--track-sharpness"),
    (["slice", "x.pt"], "trust", "--trust-checkpoint"),
    (["figure", "a.h5"], "track_every", "--track-sharpness"),  # another command's option
    (["figure", "a.h5"], "no_such_setting", "--no-such-setting"),  # fallback
])
def test_flag_namer(argv, field, flag):
    assert flag_namer(main, argv)(field) == flag


def test_aliases_name_real_options_and_are_used():
    names, used = _cli_param_names(), {field for _, field in _template_fields()}
    for field, aliases in FIELD_ALIASES.items():
        assert any(a in names for a in aliases) and field in used, field


# ------------------------------------------------------------------ real call sites
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 310-parameter MLP on the digits and its checkpoint."""
    from landscape.session import open_session

    s = open_session(None, model="mlp:hidden=4", data="digits", subset=64)
    path = tmp_path_factory.mktemp("ck") / "mlp.pt"
    torch.save(s.model.state_dict(), path)
    return s, path


def test_analyze_hessian_names_fields(tiny):
    from landscape.hessian.analyze import HessianConfig, analyze_hessian

    s, _ = tiny
    with pytest.raises(OptionError) as exc:
        analyze_hessian(s.train, None, HessianConfig(top_k=0))
    assert str(exc.value) == "top_k must be at least 1"
    with pytest.raises(OptionError) as exc:
        analyze_hessian(s.train, None, HessianConfig(top_k=1000))
    assert str(exc.value) == f"top_k 1000 exceeds the {s.train.dim} parameters"


def test_the_cli_shows_the_flag_for_the_same_error(tiny, tmp_path):
    s, path = tiny
    res = CliRunner().invoke(main, ["hessian", str(path), "--model", "mlp:hidden=4", "--data", "digits",
                                    "--subset", "64", "--top-k", "1000"])
    assert res.exit_code == 1
    assert res.output.strip() == f"error: --top-k 1000 exceeds the {s.train.dim} parameters"


def test_slice_config_errors(tmp_path, monkeypatch):
    from landscape.slices import SliceConfig, slice_checkpoint

    with pytest.raises(OptionError) as exc:
        slice_checkpoint("x.pt", SliceConfig(direction="file", out=str(tmp_path / "s.h5")))
    assert str(exc.value) == "direction file needs direction_file PATH"
    with pytest.raises(OptionError, match=r"^eval_batch_size must be a positive integer \(got 0\)$"):
        slice_checkpoint("x.pt", SliceConfig(eval_batch_size=0, out=str(tmp_path / "s.h5")))
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["slice", "x.pt", "--direction", "file", "--out", "s.h5"])
    assert res.exit_code == 1 and res.output.strip() == "error: --direction file needs --direction-file PATH"
    res = CliRunner().invoke(main, ["slice", "x.pt", "--direction", "pca", "--out", "s.h5"])
    assert res.output.strip() == "error: --direction pca needs --trajectory RUN_DIR (or checkpoint files)"


def test_sharpness_config_errors():
    from landscape.sharpness.measure import SharpnessConfig

    with pytest.raises(OptionError, match=r"^adaptive_rho must be a positive number, got -1$"):
        SharpnessConfig(adaptive_rho=-1)
    with pytest.raises(OptionError, match=r"^pac_criterion must be 'loss' or 'error'$"):
        SharpnessConfig(pac_criterion="zero-one")
    with pytest.raises(OptionError) as exc:
        SharpnessConfig(samples=1)
    assert exc.value.render(flag_namer(main, ["sharpness", "a.pt"])) == (
        "need --samples >= 2, --steps >= 1, --restarts >= 1, --trace-matvecs >= 3")


def test_figure_errors_through_the_cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["figure", "a.h5", "--out", "f.txt"])
    assert res.exit_code == 1 and res.output.strip() == "error: --out f.txt: the extension must be .pdf, .png or .svg"


# ------------------------------------------------------------------ drift: no flags outside cli/
def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        if "cli" not in path.relative_to(PACKAGE).parts:
            yield path, ast.parse(path.read_text(encoding="utf-8"))


def _strings(node):
    """The literal text of every string constant under ``node`` (f-strings' literal parts too)."""
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _call_name(node):
    f = node.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


def test_no_raise_outside_the_cli_spells_a_flag():
    offenders = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            checked = node if isinstance(node, ast.Raise) else (
                node if isinstance(node, ast.Call) and _call_name(node) in TEMPLATE_CALLS else None)
            if checked is None:
                continue
            for text in _strings(checked):
                if FLAG.search(ADVICE.sub("", text)):
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {text!r}")
    assert offenders == []


def _template_fields():
    """(where, field) for every field of every literal template and every literal Field(...)."""
    out = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name, where = _call_name(node), f"{path.relative_to(PACKAGE)}:{node.lineno}"
            if name == "Field" and node.args and isinstance(node.args[0], ast.Constant):
                out.append((where, node.args[0].value))
            if name not in TEMPLATE_CALLS or not node.args:
                continue
            template = "".join(_strings(node.args[0])) if isinstance(node.args[0], (ast.Constant, ast.BinOp)) else None
            if template is None:
                continue
            given = {k.arg for k in node.keywords}
            for _, field, _, _ in string.Formatter().parse(template):
                if field is not None and re.split(r"[.\[]", field)[0] not in given:
                    out.append((where, field))
    return out


def _cli_param_names():
    names, todo = set(), [main]
    while todo:
        cmd = todo.pop()
        names.update(p.name for p in cmd.params)
        todo.extend(getattr(cmd, "commands", {}).values())
    return names


def test_no_template_is_an_f_string():  # an f-string would fill (and lose) the fields before the class sees them
    found = [f"{path.relative_to(PACKAGE)}:{node.lineno}" for path, tree in _modules() for node in ast.walk(tree)
             if isinstance(node, ast.Call) and _call_name(node) in TEMPLATE_CALLS and node.args
             and isinstance(node.args[0], ast.JoinedStr)]
    assert found == []


def test_every_field_maps_to_a_cli_option():
    fields = _template_fields()
    assert len(fields) > 80  # the walk finds the templates
    names = _cli_param_names()
    unmapped = [f"{where}: {field}" for where, field in fields
                if field not in names and not any(a in names for a in FIELD_ALIASES.get(field, ()))]
    assert unmapped == []
