"""The docs-example convention: every ```console block in README.md and docs/**/*.md is a test.

A block is a list of commands (lines starting with ``$ ``; a line ending in ``\\`` continues on
the next) each followed by the output it is expected to print (stdout and stderr together, with
``LANDSCAPE_PROGRESS=0``). The blocks of one page run in order in one temporary folder, so a
block may use files an earlier block on the same page wrote. ``landscape`` and ``python`` are the
CLI and interpreter of the tree under test.

What is compared (the stable parts of an output):

- line structure: expected and actual lines are matched one to one, except that a line ``...``
  matches any number of lines (zero included) and a line ending in `` ...`` matches any line that
  starts like it (for long or varying tails); runs of spaces count as one space;
- text between numbers exactly;
- numbers to the precision they are printed with: the actual number must round to the expected
  one (lie within half a unit of its last printed digit; counts must be equal). A number directly followed by a time unit
  (``s``, ``ms``, ``seconds``, ``min``) is a duration and is never compared;
- output that is a JSON document: the same keys at every level and list lengths, strings equal,
  numbers as above;
- the exit status: 0, unless an expected line starts with ``error:``, then non-zero.

Directives, as HTML comments on the lines just above the block (invisible when rendered):

- ``<!-- docs: numbers-vary -->``: numbers are not compared (only the text around them);
- ``<!-- docs: test-with --range -1:1:5 -->``: the test runs every ``landscape`` command of the
  block that has these options with these values instead (added when the command lacks them),
  for examples too slow for the test suite as shown. The page must say so in visible text: the
  options string must appear in the paragraph above the block. Numbers are then not compared.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parent.parent
DIRECTIVE = re.compile(r"^<!--\s*docs:\s*(?P<body>.*?)\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)\s*$")
KNOWN_DIRECTIVES = ("numbers-vary", "test-with")
# a number not glued to an identifier (epoch_008.pt, lr0.1, sha256 hex stay text)
NUMBER = re.compile(r"(?<![A-Za-z0-9_.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_0-9])")
DURATION_AFTER = re.compile(r"^\s?(?:s|ms|seconds|sec|min)\b")
COMMAND_TIMEOUT_S = 600


def docs_pages(root: Path = REPO) -> List[Path]:
    """README.md and every Markdown page under docs/, in a stable order."""
    pages = [root / "README.md"] if (root / "README.md").exists() else []
    return pages + sorted((root / "docs").rglob("*.md"))


@dataclass(frozen=True)
class Command:
    """One ``$ `` command of a console block and the lines it is expected to print."""

    text: str
    expected: Tuple[str, ...]
    line: int  # 1-based line of the ``$ `` in the page
    out_line: int = 0  # 1-based line of the first expected output line (for --update)


@dataclass(frozen=True)
class Block:
    """A ```console block with its directives."""

    path: Path
    line: int
    commands: Tuple[Command, ...]
    numbers_vary: bool = False
    test_with: str = ""


@dataclass
class _Pending:
    text: List[str] = field(default_factory=list)
    expected: List[str] = field(default_factory=list)
    line: int = 0
    out_line: int = 0
    continued: bool = False

    def done(self) -> Command:
        return Command(" ".join(self.text), tuple(self.expected), self.line, self.out_line)


def _parse_commands(lines: Sequence[str], first_line: int, where: str) -> Tuple[Command, ...]:
    commands: List[Command] = []
    cur: Optional[_Pending] = None
    for i, raw in enumerate(lines):
        line = raw.rstrip()
        if cur is not None and cur.continued:
            part = line.strip()
            cur.continued = part.endswith("\\")
            cur.text.append(part[:-1].rstrip() if cur.continued else part)
            cur.out_line = first_line + i + 1
            continue
        if line.startswith("$ ") or line == "$":
            if cur is not None:
                commands.append(cur.done())
            body = line[2:].strip()
            cur = _Pending(line=first_line + i, out_line=first_line + i + 1, continued=body.endswith("\\"))
            cur.text.append(body[:-1].rstrip() if cur.continued else body)
            continue
        if cur is None:
            if line.strip():
                raise ValueError(f"{where}: console block has output before its first '$ ' command")
            continue
        cur.expected.append(line)
    if cur is not None:
        commands.append(cur.done())
    if not commands:
        raise ValueError(f"{where}: console block without a '$ ' command (use ```text for plain output)")
    out = []
    for c in commands:
        exp = list(c.expected)
        while exp and not exp[-1].strip():
            exp.pop()
        out.append(Command(c.text, tuple(exp), c.line, c.out_line))
    return tuple(out)


def _directives(lines: Sequence[str], fence_index: int, where: str) -> Tuple[Dict[str, str], int]:
    """Directives in the comment lines just above line ``fence_index`` (blank lines allowed),
    and the index of the first line above them."""
    found: Dict[str, str] = {}
    j = fence_index - 1
    while j >= 0:
        text = lines[j].strip()
        if not text:
            j -= 1
            continue
        m = DIRECTIVE.match(text)
        if not m:
            break
        name, _, arg = m.group("body").partition(" ")
        if name not in KNOWN_DIRECTIVES:
            raise ValueError(f"{where}: unknown docs directive {name!r} (known: {', '.join(KNOWN_DIRECTIVES)})")
        found[name] = arg.strip()
        j -= 1
    return found, j


def parse_blocks(path: Path) -> List[Block]:
    """Every ```console block of a Markdown page, with its commands and directives."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: List[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group("fence"), m.group("lang")
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        if lang == "console":
            where = f"{path.name}:{i + 1}"
            indent = len(m.group("indent"))
            body = [x[indent:] if x[:indent].strip() == "" else x for x in lines[i + 1:end]]
            found, above = _directives(lines, i, where)
            test_with = found.get("test-with", "")
            if "test-with" in found:
                if not test_with:
                    raise ValueError(f"{where}: test-with needs the options to substitute")
                start = above
                while start >= 0 and lines[start].strip():
                    start -= 1
                paragraph = " ".join(x.strip() for x in lines[start + 1:above + 1])
                if test_with not in paragraph:
                    raise ValueError(f"{where}: the paragraph above a test-with block must say that the "
                                     f"test runs it with `{test_with}`")
            blocks.append(Block(path, i + 1, _parse_commands(body, i + 2, where),
                                numbers_vary="numbers-vary" in found or bool(test_with),
                                test_with=test_with))
        i = end + 1
    return blocks


# ---------------------------------------------------------------------------------------------
# Matching


@dataclass(frozen=True)
class _Tok:
    kind: str  # "text" | "num" | "dur"
    text: str


def tokenize(line: str) -> List[_Tok]:
    """Text and number tokens of a line; whitespace runs become one space, ends stripped."""
    line = re.sub(r"\s+", " ", line.strip())
    toks: List[_Tok] = []
    pos = 0
    for m in NUMBER.finditer(line):
        if m.start() > pos:
            toks.append(_Tok("text", line[pos:m.start()]))
        kind = "dur" if DURATION_AFTER.match(line[m.end():]) else "num"
        toks.append(_Tok(kind, m.group()))
        pos = m.end()
    if pos < len(line):
        toks.append(_Tok("text", line[pos:]))
    return toks


def last_digit_unit(number: str) -> float:
    """The value of one unit in the last printed digit: '0.0692' -> 1e-4, '5.2e+06' -> 1e5."""
    mant, _, exp = number.lower().partition("e")
    decimals = len(mant.split(".", 1)[1]) if "." in mant else 0
    return 10.0 ** ((int(exp) if exp else 0) - decimals)


def numbers_agree(expected: str, actual: str) -> bool:
    """Whether ``actual`` equals ``expected`` to the precision expected is printed with (within
    half a unit of its last digit)."""
    e, a = float(expected), float(actual)
    return abs(a - e) <= 0.5 * last_digit_unit(expected) * (1 + 1e-9) + 1e-300


def line_mismatch(expected: str, actual: str, *, numbers_vary: bool) -> Optional[str]:
    """None when the lines agree, else a short reason."""
    prefix = expected.rstrip().endswith(" ...") and expected.strip() != "..."
    et = tokenize(expected.rstrip()[:-4] if prefix else expected)
    at = tokenize(actual)
    if prefix:
        at = at[:len(et)]
        if len(at) == len(et) and et and et[-1].kind == at[-1].kind == "text" and \
                at[-1].text.startswith(et[-1].text.rstrip()):
            at[-1] = et[-1]
    if len(et) != len(at):
        return "different text"
    for e, a in zip(et, at):
        if e.kind == "text" or a.kind == "text":
            if e.kind != a.kind or e.text != a.text:
                return f"{e.text!r} != {a.text!r}"
        elif e.kind == "dur" or numbers_vary:
            continue
        elif not numbers_agree(e.text, a.text):
            return f"number {a.text} differs from {e.text} beyond its last digit"
    return None


def _match_from(exp: Sequence[str], act: Sequence[str], i: int, j: int, numbers_vary: bool,
                memo: Dict[Tuple[int, int], bool]) -> bool:
    key = (i, j)
    if key in memo:
        return memo[key]
    if i == len(exp):
        ok = j == len(act)
    elif exp[i].strip() == "...":
        ok = any(_match_from(exp, act, i + 1, k, numbers_vary, memo) for k in range(j, len(act) + 1))
    else:
        ok = j < len(act) and line_mismatch(exp[i], act[j], numbers_vary=numbers_vary) is None and \
            _match_from(exp, act, i + 1, j + 1, numbers_vary, memo)
    memo[key] = ok
    return ok


class _Num(str):
    """A JSON number kept as its printed text (for the precision rule)."""


def _json_mismatch(e: Any, a: Any, where: str, numbers_vary: bool) -> Optional[str]:
    if isinstance(e, dict):
        if not isinstance(a, dict):
            return f"{where}: expected an object"
        if set(e) != set(a):
            return f"{where}: keys differ: missing {sorted(set(e) - set(a))}, extra {sorted(set(a) - set(e))}"
        for k in e:
            r = _json_mismatch(e[k], a[k], f"{where}.{k}", numbers_vary)
            if r:
                return r
        return None
    if isinstance(e, list):
        if not isinstance(a, list) or len(a) != len(e):
            return f"{where}: expected a list of {len(e)}"
        for n, (x, y) in enumerate(zip(e, a)):
            r = _json_mismatch(x, y, f"{where}[{n}]", numbers_vary)
            if r:
                return r
        return None
    if isinstance(e, _Num):
        if not isinstance(a, (_Num, int)) or isinstance(a, bool):
            return f"{where}: expected a number"
        if not numbers_vary and not numbers_agree(e, str(a)):
            return f"{where}: {a} differs from {e} beyond its last digit"
        return None
    if isinstance(e, int) and not isinstance(e, bool):
        if isinstance(a, bool) or not isinstance(a, (int, _Num)):
            return f"{where}: expected a number"
        if not numbers_vary and not numbers_agree(str(e), str(a)):
            return f"{where}: {a} != {e}"
        return None
    return None if e == a else f"{where}: {a!r} != {e!r}"


def _as_json(lines: Sequence[str]) -> Any:
    text = "\n".join(lines).strip()
    if not text or text[0] not in "[{":
        return None
    try:
        return json.loads(text, parse_float=_Num)
    except ValueError:
        return None


def output_mismatch(expected: Sequence[str], actual: Sequence[str], *, numbers_vary: bool) -> Optional[str]:
    """None when ``actual`` output lines match the expected ones by the rules above, else why not."""
    ej = _as_json(expected)
    if ej is not None:
        aj = _as_json(actual)
        if aj is None:
            return "expected a JSON document"
        return _json_mismatch(ej, aj, "$", numbers_vary)
    act = [x.rstrip() for x in actual]
    while act and not act[-1].strip():
        act.pop()
    if _match_from(list(expected), act, 0, 0, numbers_vary, {}):
        return None
    # point at the first expected line that cannot be matched in order (for the message)
    j = 0
    for line in expected:
        if line.strip() == "...":
            continue
        k = next((k for k in range(j, len(act)) if
                  line_mismatch(line, act[k], numbers_vary=numbers_vary) is None), None)
        if k is None:
            near = act[j] if j < len(act) else "<end of output>"
            why = line_mismatch(line, near, numbers_vary=numbers_vary) if j < len(act) else ""
            return f"expected line not found: {line!r}\n  next actual line: {near!r} ({why})"
        j = k + 1
    return "the lines match only with extra or missing lines between them (add '...' where output may vary)"


def expects_error(expected: Sequence[str]) -> bool:
    return any(x.startswith("error:") for x in expected)


# ---------------------------------------------------------------------------------------------
# Running


def substitute(command: str, options: str, accepts: Any) -> str:
    """Apply a test-with options string to every ``landscape`` command in ``command`` whose
    options (``accepts(argv) -> set of flags``) include them: replace the value, or append."""
    opts = shlex.split(options)
    pairs: List[Tuple[str, Optional[str]]] = []
    k = 0
    while k < len(opts):
        value = opts[k + 1] if k + 1 < len(opts) and not opts[k + 1].startswith("--") else None
        pairs.append((opts[k], value))
        k += 2 if value is not None else 1
    # split off pipes/redirections/command separators; only the landscape segments change
    parts = re.split(r"(\s(?:\||&&|;|>|2>)\s)", command)
    for n, seg in enumerate(parts):
        words = seg.split()
        if not words or "landscape" not in words[:3]:
            continue
        flags = accepts(words[words.index("landscape") + 1:])
        for flag, value in pairs:
            if flag not in flags:
                continue
            pattern = re.compile(rf"(?<=\s){re.escape(flag)}(?:=|\s+)(\S+)" if value is not None
                                 else rf"(?<=\s){re.escape(flag)}(?=\s|$)")
            if pattern.search(seg):
                seg = pattern.sub(lambda _m, f=flag, v=value: f"{f} {v}" if v is not None else f, seg)
            else:
                seg = seg.rstrip() + f" {flag}" + (f" {shlex.quote(value)}" if value is not None else "")
        parts[n] = seg
    return "".join(parts)


def cli_flags(argv: Sequence[str]) -> set:
    """The option flags of the ``landscape`` (sub)command named at the start of ``argv``."""
    import click

    from landscape.cli import main

    cmd: Any = main
    for word in argv:
        if isinstance(cmd, click.Group) and word in cmd.commands:
            cmd = cmd.commands[word]
        else:
            break
    flags = set()
    for p in cmd.params:
        if isinstance(p, click.Option):
            flags.update(p.opts)
            flags.update(p.secondary_opts)
    return flags


def make_shims(folder: Path) -> Path:
    """A bin folder with ``landscape`` and ``python`` running this interpreter and this tree."""
    folder.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    (folder / "landscape").write_text(
        "#!/bin/sh\n"
        f'exec "{py}" -c "import sys; from landscape.cli import main; main(prog_name=\'landscape\')" "$@"\n')
    (folder / "python").write_text(f'#!/bin/sh\nexec "{py}" "$@"\n')
    for f in ("landscape", "python"):
        (folder / f).chmod(0o755)
    return folder


def docs_env(bin_dir: Path) -> Dict[str, str]:
    env = dict(os.environ)
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
               PYTHONPATH=os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])),
               LANDSCAPE_PROGRESS="0", COLUMNS="100", LC_ALL="C.UTF-8", PYTHONIOENCODING="utf-8",
               OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"))
    env.pop("LANDSCAPE_DEBUG", None)
    return env


def run_command(text: str, cwd: Path, env: Dict[str, str]) -> Tuple[int, List[str]]:
    proc = subprocess.run(["bash", "-c", text], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=COMMAND_TIMEOUT_S)
    out = proc.stdout.decode("utf-8", "replace").replace(f"{cwd}/", "").replace(str(cwd), ".")
    return proc.returncode, out.splitlines()


def check_page(path: Path, workdir: Path, *, update: bool = False) -> List[str]:
    """Run every console block of ``path`` in ``workdir``; the list of failures (empty: passed).

    With ``update``, the expected output of every command whose output does not match is replaced
    in the page by what it printed (to be reviewed and abridged with ``...`` by hand)."""
    bin_dir = make_shims(workdir / ".docs-bin")
    env = docs_env(bin_dir)
    run_dir = workdir / "run"
    run_dir.mkdir(exist_ok=True)
    failures: List[str] = []
    rel = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    replace: List[Tuple[Command, List[str]]] = []
    try:
        _run_blocks(path, rel, run_dir, env, failures, replace)
    finally:
        if update and replace:
            lines = path.read_text(encoding="utf-8").splitlines()
            for cmd, out in sorted(replace, key=lambda r: -r[0].out_line):
                first = cmd.out_line - 1
                lines[first:first + len(cmd.expected)] = out
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return failures


def _run_blocks(path: Path, rel: Path, run_dir: Path, env: Dict[str, str], failures: List[str],
                replace: List[Tuple[Command, List[str]]]) -> None:
    for block in parse_blocks(path):
        for cmd in block.commands:
            text = substitute(cmd.text, block.test_with, cli_flags) if block.test_with else cmd.text
            rc, out = run_command(text, run_dir, env)
            where = f"{rel}:{cmd.line}: $ {text}"
            want_error = expects_error(cmd.expected)
            if (rc != 0) != want_error:
                tail = "\n    ".join(out[-8:])
                failures.append(f"{where}\n  exit status {rc} ({'expected non-zero' if want_error else 'expected 0'})"
                                f"\n    {tail}")
                return  # later commands of the page usually depend on this one
            why = output_mismatch(cmd.expected, out, numbers_vary=block.numbers_vary)
            if why:
                shown = "\n    ".join(out[:40])
                failures.append(f"{where}\n  {why}\n  actual output:\n    {shown}")
                while out and not out[-1].strip():
                    out.pop()
                replace.append((cmd, [x.rstrip() for x in out]))


if __name__ == "__main__":
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description="Run the console examples of docs pages.")
    parser.add_argument("pages", nargs="+", type=Path)
    parser.add_argument("--update", action="store_true", help="write actual outputs into the pages")
    args = parser.parse_args()
    bad = 0
    for page in args.pages:
        with tempfile.TemporaryDirectory() as tmp:
            found = check_page(page.resolve(), Path(tmp), update=args.update)
        print(f"{page}: {'ok' if not found else f'{len(found)} mismatch(es)'}")
        for f in found:
            print(f)
        bad += len(found)
    sys.exit(1 if bad and not args.update else 0)
