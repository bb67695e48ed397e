"""tests/ mirrors landscape/ (issue #17 item 8); the map is in docs/architecture.md.

- ``tests/a/test_b.py`` tests ``landscape/a/b.py`` (or the package ``landscape/a/b/``);
  ``tests/a/test_b_<aspect>.py`` is a further test module of the same ``b`` (for example
  ``report/test_html_browser.py``). Tests about no single module live in the folders and top-level
  files of ``CROSS_CUTTING``, each with its reason.
- Every package module has a test module of its own or is listed in ``TESTED_THROUGH`` with the test
  modules that exercise it. A new module with neither fails here: that it is tested only through
  others is then a decision written down, not an accident. (A list that is only printed would not be
  read; a module that gains its own test module while still listed only warns, so that parallel work
  adding tests does not break this test.)
- Every folder holding test modules is a package (``__init__.py``): test modules with the same name
  in two folders need it, pytest's default import mode imports them by dotted name.
- Every test path the docs, benchmarks and scripts name exists, so moving a test updates them.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
PKG = REPO / "landscape"

CROSS_CUTTING: Dict[str, str] = {
    "integration": "end to end across modules: security payloads, the study's run folders, edge of "
                   "stability on the digits, reports of real producers, cross-library checks",
    "benchmarks": "smoke runs of the scripts in benchmarks/ (test_X.py runs benchmarks/X.py)",
    "test_docs.py": "README.md and docs/: examples run, option tables generated, flags exist",
    "test_import_graph.py": "the package as a whole: no import cycles",
    "test_layout.py": "the tests' own layout (this file)",
    "test_python_api.py": "the public API: landscape/__init__.py, notebook.py and docs/python-api.md",
}

# module (relative to landscape/) -> the test modules (relative to tests/) that exercise it. Mostly
# CLI front ends (tested with their command), model definitions (tests/test_models.py builds every
# registry model), report sections (tests/report/test_html.py builds one page of every kind), and the
# figure/table/VTK writers, which share one set of real results made once in report/test_figures.py.
TESTED_THROUGH: Dict[str, Tuple[str, ...]] = {
    "callable_package.py": ("test_python_api.py",),
    "cli/common.py": ("cli/test_basic.py", "cli/test_validate.py"),
    "cli/demo.py": ("test_demo.py",),
    "cli/examples.py": ("test_docs.py",),
    "cli/figures.py": ("report/test_figures.py",),
    "cli/inspection.py": ("cli/test_basic.py",),
    "cli/probe.py": ("probes/test_spikes.py", "probes/test_adam_first_step.py"),
    "cli/report.py": ("report/test_html.py",),
    "cli/sharpness.py": ("sharpness/test_measure.py",),
    "cli/slices.py": ("slices/test_api.py",),
    "cli/toy.py": ("test_toy.py",),
    "hessian/operator.py": ("hessian/test_lanczos.py", "hessian/test_preconditioner.py"),
    "inspection.py": ("cli/test_basic.py",),
    "logcheck.py": ("test_runs.py", "integration/test_study_runs.py"),
    "losses.py": ("test_objective.py", "test_objective_data.py", "test_synthetic.py"),
    "models/densenet.py": ("test_models.py", "models/test_recognise.py"),
    "models/resnet_cifar_he.py": ("test_models.py", "models/test_recognise.py"),
    "models/resnet_cifar_wide.py": ("test_models.py", "models/test_recognise.py"),
    "models/small.py": ("test_models.py", "models/test_recognise.py"),
    "models/vgg.py": ("test_models.py", "models/test_recognise.py"),
    "notebook.py": ("test_python_api.py",),
    "optim/schedules.py": ("optim/test_factory.py",),
    "params.py": ("test_objective_data.py", "optim/test_preconditioners.py"),
    "probes/activations.py": ("probes/test_adam_first_step.py",),
    "probes/detection.py": ("probes/test_spikes.py",),
    "probes/first_step_causes.py": ("probes/test_adam_first_step.py",),
    "probes/hypotheses.py": ("probes/test_spikes.py", "probes/test_spike_causes.py"),
    "progress.py": ("hessian/test_lanczos.py",),
    "report/common.py": ("report/test_html.py",),
    "report/hessian.py": ("report/test_html.py",),
    "report/probes.py": ("report/test_html.py",),
    "report/run.py": ("test_runs.py", "integration/test_study_runs.py"),
    "report/sharpness.py": ("report/test_html.py",),
    "report/tables.py": ("report/test_figures.py",),
    "report/toy.py": ("test_toy.py",),
    "report/vtk.py": ("report/test_figures.py", "formats/test_li2018.py"),
    "runfiles.py": ("test_runs.py",),
    "session.py": ("cli/test_hessian.py", "models/test_recognise.py"),
    "slices/evaluate.py": ("slices/test_api.py",),
    "slices/grid.py": ("slices/test_api.py",),
    "slices/surface.py": ("slices/test_api.py",),
    "specs.py": ("integration/test_security.py",),
    "version.py": ("slices/test_api.py",),
}

# files of the docs, benchmarks and scripts that may name test paths
NAMING_TEST_PATHS = ("README.md", "docs/**/*.md", "benchmarks/*.py", "scripts/*.py", "Makefile", ".ci/run")


def all_test_modules() -> List[Path]:
    """Every test module below tests/, relative to it."""
    return sorted(p.relative_to(TESTS) for p in TESTS.rglob("test_*.py"))


def package_modules() -> List[Path]:
    """Every module of the package that can have a test module (not ``__init__``/``__main__``)."""
    return sorted(p.relative_to(PKG) for p in PKG.rglob("*.py")
                  if p.name not in ("__init__.py", "__main__.py") and "__pycache__" not in p.parts)


def mirrored(test: Path) -> Optional[Path]:
    """The package module (or package) that ``test`` mirrors, relative to landscape/, or None.

    ``test_b_c_d.py`` is tried as ``b_c_d``, ``b_c``, ``b`` in turn: the longest module name wins.
    A package is mirrored by its exact name only (``test_models.py``): tests of one part of a
    package belong in its folder (``tests/hessian/test_lanczos_budget.py``, not
    ``tests/test_hessian_budget.py``)."""
    words = test.stem[len("test_"):].split("_")
    for n in range(len(words), 0, -1):
        name = "_".join(words[:n])
        if (PKG / test.parent / f"{name}.py").is_file():
            return test.parent / f"{name}.py"
        if n == len(words) and (PKG / test.parent / name / "__init__.py").is_file():
            return test.parent / name
    return None


def cross_cutting(test: Path) -> bool:
    return test.parts[0] in CROSS_CUTTING or (len(test.parts) == 1 and test.name in CROSS_CUTTING)


def test_every_test_module_mirrors_a_module_or_is_cross_cutting() -> None:
    stray = [str(t) for t in all_test_modules() if not cross_cutting(t) and mirrored(t) is None]
    assert not stray, ("test modules that mirror no landscape module (tests/a/test_b.py ↔ "
                       f"landscape/a/b.py) and are not in CROSS_CUTTING: {stray}")


def test_benchmark_tests_name_their_script() -> None:
    missing = [str(t) for t in all_test_modules() if t.parts[0] == "benchmarks"
               and not (REPO / "benchmarks" / f"{t.stem[len('test_'):]}.py").is_file()]
    assert not missing, f"tests/benchmarks/test_X.py must run benchmarks/X.py: {missing}"


def test_cross_cutting_entries_exist() -> None:
    assert not [k for k in CROSS_CUTTING if not (TESTS / k).exists()]


def test_every_module_has_a_test_module_or_is_listed() -> None:
    own = {m for m in map(mirrored, all_test_modules()) if m is not None}
    modules = package_modules()
    untested = [str(m) for m in modules if m not in own and m.as_posix() not in TESTED_THROUGH]
    assert not untested, ("modules without a test module of their own (tests/a/test_b.py for "
                          f"landscape/a/b.py); add one, or list them in TESTED_THROUGH: {untested}")
    names = {m.as_posix() for m in modules}
    gone = [m for m in TESTED_THROUGH if m not in names]
    assert not gone, f"TESTED_THROUGH lists modules that no longer exist: {gone}"
    missing = [f"{m}: {t}" for m, ts in TESTED_THROUGH.items() for t in ts if not (TESTS / t).is_file()]
    assert not missing, f"TESTED_THROUGH names test modules that do not exist: {missing}"
    now_own = sorted(m for m in TESTED_THROUGH if Path(m) in own)
    if now_own:
        warnings.warn(f"these modules have a test module now; remove them from TESTED_THROUGH: {now_own}",
                      stacklevel=1)


def test_folders_of_test_modules_are_packages() -> None:
    folders = {TESTS / t.parent for t in all_test_modules()}
    missing = sorted(str(f.relative_to(REPO)) for f in folders if not (f / "__init__.py").is_file())
    assert not missing, f"folders of test modules without __init__.py: {missing}"


def test_test_paths_named_in_docs_and_scripts_exist() -> None:
    named = set()
    for pattern in NAMING_TEST_PATHS:
        for path in REPO.glob(pattern):
            text = path.read_text(encoding="utf-8", errors="replace")
            named |= {(path.relative_to(REPO).as_posix(), m) for m in re.findall(r"\btests/[\w/]+\.py\b", text)}
    broken = sorted(f"{where}: {name}" for where, name in named if not (REPO / name).is_file())
    assert not broken, "test paths that do not exist (moved?):\n" + "\n".join(broken)


def test_the_mirror_rule() -> None:
    """The rule itself, on names whose answer is known."""
    assert mirrored(Path("hessian/test_lanczos.py")) == Path("hessian/lanczos.py")
    assert mirrored(Path("report/test_html_browser.py")) == Path("report/html.py")
    assert mirrored(Path("hessian/test_batch_sharpness.py")) == Path("hessian/batch_sharpness.py")
    assert mirrored(Path("test_models.py")) == Path("models")              # a package
    assert mirrored(Path("test_objective_data.py")) == Path("objective.py")
    assert mirrored(Path("hessian/test_nothing.py")) is None
    assert mirrored(Path("test_hessian_budget.py")) is None                 # a part of a package: its folder
    assert mirrored(Path("test_lanczos.py")) is None                        # the folder matters
    assert cross_cutting(Path("integration/test_security.py")) and not cross_cutting(Path("test_security.py"))
