"""The docs cannot drift: their examples run, their option tables are generated, their flags exist.

- every ```console block of README.md and docs/**/*.md runs and prints what the page shows
  (rules in tests/docs_examples.py);
- the option tables in docs/commands/ equal what scripts/gen_cli_docs.py makes from click;
- every ``--flag`` written next to ``landscape <command>`` exists in that command's --help;
- ``landscape --help`` starts newcomers at ``landscape demo`` and every command's help ends with
  an example whose flags and arguments parse.
"""

from __future__ import annotations

import re
import shlex
import sys
import textwrap
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import click
import pytest
from docs_examples import (
    REPO,
    check_page,
    cli_flags,
    docs_pages,
    line_mismatch,
    output_mismatch,
    parse_blocks,
    substitute,
)

sys.path.insert(0, str(REPO / "scripts"))
import gen_cli_docs  # noqa: E402

from landscape.cli import main  # noqa: E402
from landscape.cli.examples import EXAMPLES  # noqa: E402

PAGES_WITH_EXAMPLES = [p for p in docs_pages() if parse_blocks(p)]
# Commands whose pages (docs/commands/slice.md, interpolate.md) are being written alongside this
# test; their tables are generated into those pages once they exist. Keep this set empty otherwise.
PENDING_PAGES: Set[str] = set()
# Pages other work is adding right now; links to them may dangle until then. Keep empty otherwise.
PENDING_LINK_TARGETS: Set[str] = set()


# ---------------------------------------------------------------------------------------------
# The examples themselves


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES_WITH_EXAMPLES, ids=[str(p.relative_to(REPO)) for p in PAGES_WITH_EXAMPLES])
def test_console_examples_run_as_shown(page: Path, tmp_path: Path) -> None:
    failures = check_page(page, tmp_path)
    assert not failures, "\n\n".join(failures)


def test_every_docs_page_is_linked_from_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    linked = {(REPO / m).resolve() for m in re.findall(r"\]\((docs/[^)#\s]+\.md)(?:#[^)]*)?\)", readme)}
    missing = [str(p.relative_to(REPO)) for p in sorted((REPO / "docs").rglob("*.md")) if p.resolve() not in linked]
    assert not missing, f"not linked from README.md: {missing}"
    broken = [str(p.relative_to(REPO)) for p in linked
              if not p.exists() and str(p.relative_to(REPO)) not in PENDING_LINK_TARGETS]
    assert not broken, f"README.md links to missing pages: {broken}"


def test_links_between_pages_resolve() -> None:
    bad = []
    for page in docs_pages():
        for target in re.findall(r"\]\(([^)#\s]+?\.(?:md|png))(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            path = (page.parent / target).resolve()
            pending = path.is_relative_to(REPO) and str(path.relative_to(REPO)) in PENDING_LINK_TARGETS
            if "://" not in target and not path.exists() and not pending:
                bad.append(f"{page.relative_to(REPO)} -> {target}")
    assert not bad, "broken links:\n" + "\n".join(bad)


def test_every_page_parses() -> None:
    """Directive typos, output before a command or a test-with without a visible note fail here."""
    for page in docs_pages():
        parse_blocks(page)


# ---------------------------------------------------------------------------------------------
# The harness's rules (each must be able to fail)


def test_numbers_compare_to_their_printed_precision() -> None:
    assert line_mismatch("loss 0.0692 acc 0.94", "loss 0.06921 acc 0.94", numbers_vary=False) is None
    assert line_mismatch("loss 0.0692", "loss 0.0694", numbers_vary=False) is not None
    assert line_mismatch("λ 5.152e+06", "λ 5.1524e+06", numbers_vary=False) is None
    assert line_mismatch("λ 5.152e+06", "λ 5.153e+06", numbers_vary=False) is not None
    assert line_mismatch("λ 5.152e+06", "λ 5.045e+06", numbers_vary=False) is not None
    assert line_mismatch("λ 5.152e+06", "λ 5.045e+06", numbers_vary=True) is None
    assert line_mismatch("9 epoch checkpoints", "10 checkpoints", numbers_vary=True) is not None
    assert line_mismatch("runs/a/epoch_008.pt", "runs/a/epoch_009.pt", numbers_vary=True) is not None


def test_durations_are_never_compared_but_their_text_is() -> None:
    assert line_mismatch("26 products in 150.2 s", "26 products in 3.1 s", numbers_vary=False) is None
    assert line_mismatch("26 products in 150.2 s", "27 products in 3.1 s", numbers_vary=False) is not None
    assert line_mismatch("took 31 s", "took 31 min", numbers_vary=False) is not None


def test_spacing_is_free_and_ellipsis_matches_any_lines() -> None:
    exp = ["head", "...", "tail  1.5"]
    assert output_mismatch(exp, ["head", "tail 1.5"], numbers_vary=False) is None
    assert output_mismatch(exp, ["head", "a", "b", "tail 1.5"], numbers_vary=False) is None
    assert output_mismatch(exp, ["head", "a", "tail 1.5", "extra"], numbers_vary=False) is not None
    assert output_mismatch(["a", "b"], ["a", "x", "b"], numbers_vary=False) is not None
    assert line_mismatch("error: file 3 ...", "error: file 3 is missing", numbers_vary=False) is None
    assert line_mismatch("error: file 3 ...", "error: file 4 is missing", numbers_vary=False) is not None
    assert line_mismatch("error: fi ...", "error: file 3", numbers_vary=False) is None


def test_json_output_compares_keys_and_numbers() -> None:
    exp = ['{"eigenvalues": [1.02, 0.93], "converged": true}']
    assert output_mismatch(exp, ['{', '"converged": true,', '"eigenvalues": [1.019, 0.931]}'], numbers_vary=False) is None
    assert output_mismatch(exp, ['{"eigenvalues": [1.02, 0.93], "converged": true, "x": 1}'], numbers_vary=False)
    assert output_mismatch(exp, ['{"eigenvalues": [1.1, 0.93], "converged": true}'], numbers_vary=False)
    assert output_mismatch(exp, ['{"eigenvalues": [1.1, 0.93], "converged": true}'], numbers_vary=True) is None


def test_directives_and_visible_note(tmp_path: Path) -> None:
    ok = tmp_path / "ok.md"
    ok.write_text(textwrap.dedent("""\
        The test runs this with `--range -1:1:5` instead.
        <!-- docs: test-with --range -1:1:5 -->
        ```console
        $ landscape slice a.pt \\
            --range -1:1:51 --out s.h5
        done
        ```
        """))
    (block,) = parse_blocks(ok)
    assert block.numbers_vary and block.commands[0].text == "landscape slice a.pt --range -1:1:51 --out s.h5"
    assert block.commands[0].expected == ("done",)
    silent = tmp_path / "silent.md"
    silent.write_text(ok.read_text().replace("The test runs this with `--range -1:1:5` instead.", "Text."))
    with pytest.raises(ValueError, match="must say"):
        parse_blocks(silent)
    typo = tmp_path / "typo.md"
    typo.write_text("<!-- docs: number-vary -->\n```console\n$ true\n```\n")
    with pytest.raises(ValueError, match="unknown docs directive"):
        parse_blocks(typo)


def test_test_with_substitutes_only_where_the_command_has_the_option() -> None:
    cmd = "landscape slice a.pt --range -1:1:51 --out s.h5 && landscape inspect a.pt | head -3"
    out = substitute(cmd, "--range -1:1:5 --subset 64", cli_flags)
    assert out == "landscape slice a.pt --range -1:1:5 --out s.h5 --subset 64 && " \
                  "landscape inspect a.pt --subset 64 | head -3"
    assert substitute("landscape toy basin", "--range -1:1:5", cli_flags) == "landscape toy basin"


def test_a_wrong_example_fails(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```console\n$ echo 'loss 0.50'\nloss 0.40\n$ echo later\nlater\n```\n")
    failures = check_page(page, tmp_path / "w")
    assert len(failures) == 1 and "0.50" in failures[0]
    page.write_text("```console\n$ landscape inspect missing.pt\nerror: ...\n```\n")
    assert check_page(page, tmp_path / "w2") == []
    page.write_text("```console\n$ echo 'error: x is missing' && false\nerror: y ...\n```\n")
    assert "expected line not found" in check_page(page, tmp_path / "w4")[0]
    page.write_text("```console\n$ echo 'error: x is missing' && false\n...\n```\n")
    assert "exit status 1" in check_page(page, tmp_path / "w3")[0]


# ---------------------------------------------------------------------------------------------
# Option tables, flags, help


def test_option_tables_are_generated_from_click_and_fresh() -> None:
    problems = [p for p in gen_cli_docs.sync(check=True)
                if not any(p.startswith(f"{name}: no options table") for name in PENDING_PAGES)]
    assert not problems, "run `python scripts/gen_cli_docs.py`:\n" + "\n".join(problems)


def _commands() -> Dict[str, click.Command]:
    return {name: cmd for name, cmd, _ctx in gen_cli_docs.leaf_commands()}


def _flags(cmd: click.Command) -> Set[str]:
    out = {"--help", "-h", "--debug"}
    for p in cmd.params:
        if isinstance(p, click.Option):
            out.update(p.opts)
            out.update(p.secondary_opts)
    return out


MENTION = re.compile(r"landscape((?:\s+[a-z][\w-]*){1,2})")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _code_segments(text: str) -> Iterator[Tuple[int, str]]:
    """(line number, text) of every code line (continuations joined) and inline code span."""
    lines = text.splitlines()
    in_block, i = False, 0
    while i < len(lines):
        line = lines[i]
        if line.strip().startswith(("```", "~~~")):
            in_block = not in_block
            i += 1
            continue
        if in_block:
            start = i
            joined = line
            while joined.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                joined = joined.rstrip()[:-1] + " " + lines[i]
            yield start + 1, joined
        else:
            for span in re.findall(r"`([^`]+)`", line):
                yield i + 1, span
        i += 1


def _mentions(text: str, commands: Dict[str, click.Command]) -> Iterator[Tuple[int, str, str]]:
    """(line, command name, flag) for every --flag following `landscape <command>` in one code segment."""
    for lineno, seg in _code_segments(text):
        for part in re.split(r"\s(?:\||&&|;|#)\s", seg):
            m = MENTION.search(part)
            if not m:
                continue
            words = m.group(1).split()
            name = "landscape " + " ".join(words[:2])
            if name not in commands:
                name = "landscape " + words[0]
            if name not in commands:
                continue
            for flag in FLAG.findall(part[m.end():]):
                yield lineno, name, flag


def test_every_flag_next_to_a_command_exists() -> None:
    commands = _commands()
    bad: List[str] = []
    for page in docs_pages():
        for lineno, name, flag in _mentions(page.read_text(encoding="utf-8"), commands):
            if flag not in _flags(commands[name]):
                bad.append(f"{page.relative_to(REPO)}:{lineno}: {name} has no {flag}")
    for example in EXAMPLES.values():
        for _l, cmd_name, flag in _mentions(f"`{example}`", commands):
            if flag not in _flags(commands[cmd_name]):
                bad.append(f"examples.py: {cmd_name} has no {flag}")
    assert not bad, "\n".join(bad)


def test_flag_check_catches_a_made_up_flag() -> None:
    commands = _commands()
    found = list(_mentions("run `landscape hessian ckpt.pt --top-k 3 --made-up 1`", commands))
    assert [(n, f) for _l, n, f in found] == [("landscape hessian", "--top-k"), ("landscape hessian", "--made-up")]
    assert "--made-up" not in _flags(commands["landscape hessian"])


def test_every_option_is_documented_on_a_command_page() -> None:
    """Each command's generated table (checked fresh above) lists all of its --help options."""
    pages = {p: p.read_text(encoding="utf-8") for p in (REPO / "docs" / "commands").glob("*.md")}
    for name, cmd in _commands().items():
        holders = [p for p, text in pages.items() if f"<!-- cli-options: {name} -->" in text]
        if name in PENDING_PAGES and not holders:
            continue
        assert len(holders) == 1, f"{name}: options table in {len(holders)} pages"
        text = pages[holders[0]]
        for flag in _flags(cmd) - {"--debug", "-h"}:
            assert f"`{flag}" in text or f" {flag}" in text or f"/{flag}" in text, f"{name}: {flag} undocumented"


def _help(args: List[str]) -> str:
    from click.testing import CliRunner

    result = CliRunner().invoke(main, args, prog_name="landscape", terminal_width=100)
    assert result.exit_code == 0, result.output
    return result.output


def test_top_level_help_starts_at_the_demo_and_does_not_cut_descriptions() -> None:
    text = _help(["--help"])
    assert "Start with `landscape demo`" in text
    commands = " ".join(text.split("Commands:", 1)[1].split())
    for name, cmd in main.commands.items():
        first = " ".join((cmd.help or "").strip().split("\n\n")[0].split())
        assert f"{name} {first}" in commands, f"{name}: description cut"


def test_every_command_help_ends_with_a_parsing_example() -> None:
    for name, cmd in _commands().items():
        assert name in EXAMPLES, f"{name}: no example in landscape/cli/examples.py"
        text = _help(name.split()[1:] + ["--help"])
        assert text.rstrip().splitlines()[-1].strip() == EXAMPLES[name], name
        argv = shlex.split(EXAMPLES[name])[len(name.split()):]
        cmd.make_context(name, argv)  # raises on an unknown flag, a bad value or a missing argument


def test_update_writes_what_the_commands_printed(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("Text.\n\n```console\n$ echo a && \\\n  echo b\nold\n\n$ echo c\nc\n$ printf 'd\\ne\\n'\n```\n")
    failures = check_page(page, tmp_path / "w", update=True)
    assert len(failures) == 2
    assert page.read_text() == "Text.\n\n```console\n$ echo a && \\\n  echo b\na\nb\n\n$ echo c\nc\n$ printf 'd\\ne\\n'\nd\ne\n```\n"
    assert check_page(page, tmp_path / "w2") == []
