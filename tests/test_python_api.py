"""The public Python API: every docstring example runs (doctest), `import landscape` stays light,
and the docs page's Python example runs as written."""

import doctest
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parent.parent
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _run_doctests(module, *, setup_from_module_doc=False):
    tests = [t for t in doctest.DocTestFinder().find(module) if t.examples]
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    shared = {}
    if setup_from_module_doc:  # the module docstring builds what the function examples use
        head = [t for t in tests if t.name == module.__name__]
        assert head, "the module docstring has the set-up example"
        runner.run(head[0], clear_globs=False)
        shared = dict(head[0].globs)
        tests = [t for t in tests if t is not head[0]]
    for t in tests:
        t.globs.update(shared)
        runner.run(t, clear_globs=False)
    return runner.summarize(verbose=False), [t.name for t in tests]


def test_notebook_entry_points_docstrings_run():
    import landscape.notebook as nb

    result, names = _run_doctests(nb, setup_from_module_doc=True)
    assert result.failed == 0
    for fn in nb.__all__:
        assert f"landscape.notebook.{fn}" in names, f"{fn} has no docstring example"


@pytest.mark.parametrize("module", ["landscape.objective", "landscape.monitor"])
def test_objective_and_monitor_docstrings_run(module):
    import importlib

    result, names = _run_doctests(importlib.import_module(module))
    assert result.failed == 0 and result.attempted > 3


def test_public_names_and_light_import():
    import landscape

    for name in ("Objective", "Monitor", "top_eigenvalues", "trace", "density", "slice_surface", "sharpness",
                 "stability", "adam_first_step", "probe_spikes", "report", "open_session"):
        assert name in landscape.__all__ and callable(getattr(landscape, name))
    code = ("import sys, landscape; heavy = [m for m in ('landscape.hessian', 'landscape.slices', 'landscape.report', "
            "'landscape.monitor', 'landscape.probes', 'h5py', 'plotly', 'scipy') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def _python_blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def test_docs_python_api_example_runs(tmp_path):
    blocks = _python_blocks(ROOT / "docs" / "python-api.md")
    assert blocks
    script = tmp_path / "example.py"
    script.write_text(blocks[0])
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                         env={**__import__("os").environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "top eigenvalues" in out.stdout and (tmp_path / "report.html").stat().st_size > 10_000
