"""Finished work is never lost to an unwritable output (issue #19 item 4)."""

import json

import pytest
from click.testing import CliRunner

from landscape.cli import main
from landscape.errors import LandscapeError
from landscape.outputs import check_writable, write_text_safely


@pytest.fixture()
def blocked(tmp_path):
    """A path that nobody (root included) can create: its 'folder' is a regular file."""
    f = tmp_path / "afile"
    f.write_text("x")
    return f / "out.json"


@pytest.mark.parametrize("cmd,flag", [(["hessian"], "--json"), (["hessian"], "--html"),
                                      (["sharpness"], "--json"), (["sharpness"], "--html"),
                                      (["inspect"], "--json")])
def test_unwritable_result_path_is_refused_before_work(cmd, flag, blocked, digits_run):
    res = CliRunner().invoke(main, cmd + [str(digits_run / "epoch_003.pt"), flag, str(blocked)])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "cannot write" in lines[0] and flag in lines[0], res.output


def test_missing_result_folder_is_created(tmp_path, digits_run):
    out = tmp_path / "new" / "deeper" / "r.json"
    res = CliRunner().invoke(main, ["inspect", str(digits_run / "epoch_003.pt"), "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["n_params"] > 0


def test_check_writable_rejects_a_folder(tmp_path):
    with pytest.raises(LandscapeError, match="is a folder"):
        check_writable(tmp_path)


def test_late_failure_writes_fallback_and_says_where(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "sub" / "result.json"
    check_writable(target)
    target.mkdir()  # the destination went bad while the work ran
    written = write_text_safely(target, '{"a": 1}\n')
    assert written == tmp_path / "result.json" and written.read_text() == '{"a": 1}\n'
    err = capsys.readouterr().err
    assert "could not write" in err and str(written) in err
    # a second failure does not overwrite the first fallback
    assert write_text_safely(target, "{}\n") == tmp_path / "result.1.json"


def test_no_scratch_files_left(tmp_path):
    target = tmp_path / "r.json"
    check_writable(target)
    write_text_safely(target, "x")
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
