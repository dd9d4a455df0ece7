"""The README and docs/*.md as written: the README stays a front door, its test command is
the one .ci/run runs, every fenced Python block compiles, every command of a fenced shell
block or an inline code span names entry points, scripts, configs, flags and config fields
that exist, every relative link resolves, and `python -m jaxgan.X --help` runs for every
command the pages name."""

from __future__ import annotations

import concurrent.futures
import functools
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from jaxgan import config as config_lib
from jaxgan import families
from tests.conftest import subprocess_env

REPO = Path(__file__).resolve().parents[1]
PAGES = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))
README_MAX_LINES = 250
SHELL = ("sh", "bash", "shell", "console", "")
PYTHONS = ("python", "python3", ".venv/bin/python")
# Repository paths a command may name; a token under one of these must exist.
REPO_DIRS = ("configs", "launch", "benchmarks", "notebooks", "docs", "tests", "jaxgan")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
CONFIG_OVERRIDE = re.compile(r"(?:^|=)--config\.([A-Za-z_][\w.]*)=(?!\.\.\.)")
# A placeholder in a command (`python -m jaxgan.NAME`, `configs/NAME.py`) names nothing.
PLACEHOLDER = re.compile(r"\b[A-Z][A-Z0-9_]+\b")
HELP_FLAG = re.compile(r"^ {2}--(\w+)", re.M)
ARGPARSE_FLAG = re.compile(r"""add_argument\(\s*["']--([\w-]+)["']""")


def rel(path: Path) -> str:
  return str(path.relative_to(REPO))


def fenced_blocks(path: Path) -> list[tuple[str, int, str]]:
  """(language, line number of the first code line, code) of each fenced block."""
  blocks, lines, i = [], path.read_text().splitlines(), 0
  while i < len(lines):
    m = FENCE.match(lines[i])
    if not m:
      i += 1
      continue
    indent, fence, lang = len(m.group(1)), m.group(2), m.group(3).lower()
    start, i = i + 1, i + 1
    while i < len(lines) and not lines[i].strip().startswith(fence):
      i += 1
    assert i < len(lines), f"{rel(path)}:{start}: unclosed code fence"
    blocks.append((lang, start + 1, "\n".join(l[indent:] for l in lines[start:i])))
    i += 1
  return blocks


def prose(path: Path) -> str:
  """The page without its fenced blocks (each replaced by an empty line)."""
  out, inside = [], None
  for line in path.read_text().splitlines():
    m = FENCE.match(line)
    if inside is None and m:
      inside = m.group(2)
      out.append("")
    elif inside is not None:
      if line.strip().startswith(inside):
        inside = None
      out.append("")
    else:
      out.append(line)
  return "\n".join(out)


def shell_lines(code: str) -> list[tuple[int, str]]:
  """(offset of its first line, line) of each logical line of a shell block: continuations
  joined, comment lines dropped."""
  out, pending, start = [], "", 0
  for i, line in enumerate(code.splitlines()):
    if not pending:
      start = i
    if line.rstrip().endswith("\\"):
      pending += line.rstrip()[:-1] + " "
      continue
    line = (pending + line).strip()
    pending = ""
    if line and not line.startswith("#"):
      out.append((start, line))
  return out


def commands(line: str) -> list[list[str]]:
  """The simple commands of one shell line (split at &&, ||, ; and |), as argv lists, with
  leading VAR=value assignments dropped."""
  lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
  lexer.whitespace_split = True
  lexer.commenters = "#"
  out, argv = [], []
  for token in lexer:
    if token in ("&&", "||", ";", "|", "&"):
      out.append(argv)
      argv = []
    else:
      argv.append(token)
  out.append(argv)
  for argv in out:
    while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", argv[0]):
      argv.pop(0)
  return [argv for argv in out if argv]


def inline_commands(path: Path) -> list[tuple[int, str]]:
  """(line number, text) of each inline code span of the prose that is a command or a
  config override: `python ...`, `bash launch/...`, `sbatch ...`, `--config.FIELD=...`."""
  text, out = prose(path), []
  for m in re.finditer(r"(?<!`)`([^`]+)`(?!`)", text):
    span = " ".join(m.group(1).split())
    if re.match(r"(python3? |bash |sbatch |--config\.\w)", span):
      out.append((text.count("\n", 0, m.start()) + 1, span))
  return out


def all_commands() -> list[tuple[str, str, frozenset[str]]]:
  """(where, command line, the files the page's Python blocks write) of every shell line of
  every page, fenced or inline. A worked example's file (a Python block whose first line is
  `# configs/toy32.py`) counts as existing in its page's commands."""
  out = []
  for page in PAGES:
    blocks = fenced_blocks(page)
    written = frozenset(m.group(1) for lang, _, code in blocks if lang in ("python", "py")
                        for m in [re.match(r"#\s*(\S+\.py)\s*$", code.split("\n", 1)[0])] if m)
    for lang, lineno, code in blocks:
      if lang in SHELL:
        out += [(f"{rel(page)}:{lineno + i}", line, written) for i, line in shell_lines(code)]
    out += [(f"{rel(page)}:{lineno}", span, written) for lineno, span in inline_commands(page)]
  return out


def module_path(module: str) -> Path | None:
  """The file of `python -m module` for a jaxgan module, or None when there is none."""
  base = REPO.joinpath(*module.split("."))
  for candidate in (base.with_suffix(".py"), base / "__main__.py"):
    if candidate.is_file():
      return candidate
  return None


def jaxgan_modules() -> set[str]:
  found = set()
  for _, line, _ in all_commands():
    for argv in commands(line):
      if argv[0] in PYTHONS and len(argv) > 2 and argv[1] == "-m" and argv[2].startswith("jaxgan"):
        found.add(argv[2])
  return found


@functools.lru_cache(maxsize=None)
def help_runs() -> dict[str, subprocess.CompletedProcess]:
  """`python -m MODULE --help` of every jaxgan command the pages name, run side by side."""
  env = subprocess_env()
  env["GLIBC_TUNABLES"] = "glibc.malloc.hugetlb=0"  # no allocator restart (jaxgan/hostmem.py)

  def run(module):
    return subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
  modules = sorted(m for m in jaxgan_modules() if not PLACEHOLDER.search(m) and module_path(m))
  with concurrent.futures.ThreadPoolExecutor(len(modules) or 1) as pool:
    return dict(zip(modules, pool.map(run, modules)))


@functools.lru_cache(maxsize=None)
def config_of(config_arg: str | None):
  """The configs that a `--config` argument (configs/NAME.py[:ARG]) names; for None (no
  configs/ file on the line) the default config of every family."""
  if config_arg is None:
    return tuple(config_lib.default_config(family) for family in sorted(families.FAMILIES))
  path, _, arg = config_arg.partition(":")
  return (config_lib.load_file(REPO / path, arg or None),)


def has_field(config, field: str) -> bool:
  for part in field.split("."):
    if not hasattr(config, "keys") or part not in config:
      return False
    config = config[part]
  return True


def config_arg(argv: list[str]) -> str | None:
  """The configs/ file of a command line (`--config PATH` or `--config=PATH`)."""
  for i, token in enumerate(argv):
    value = None
    if token == "--config" and i + 1 < len(argv):
      value = argv[i + 1]
    elif token.startswith("--config="):
      value = token.split("=", 1)[1]
    if value and value.startswith("configs/"):
      return value
  return None


def problems_of(where: str, line: str, written: frozenset[str] = frozenset()) -> list[str]:
  """What is wrong with one command line: missing paths, modules, flags, config fields.
  `written`: files the page itself writes (a worked example), which need not exist."""
  bad = []
  for argv in commands(line):
    for token in argv:
      for part in re.split(r"[=,]", token):
        path = part.split(":", 1)[0]
        if (path.split("/", 1)[0] in REPO_DIRS and "." in path.rsplit("/", 1)[-1]
            and path not in written and not PLACEHOLDER.search(path)):
          if not (REPO / path).exists():
            bad.append(f"{where}: {path} does not exist ({line})")
    cfg = config_arg(argv)
    if cfg in written:
      cfg = None
    for token in argv:
      for field in CONFIG_OVERRIDE.findall(token):
        if not any(has_field(c, field) for c in config_of(cfg)):
          bad.append(f"{where}: config.{field} is not a field of "
                     f"{cfg or 'any family default config'} ({line})")
    if argv[0] not in PYTHONS or len(argv) < 2:
      continue
    if argv[1] == "-m" and len(argv) > 2 and argv[2].startswith("jaxgan"):
      command, module, args = f"python -m {argv[2]}", argv[2], argv[3:]
      if PLACEHOLDER.search(module):
        continue  # `python -m jaxgan.NAME`: a pattern, not a command
      if module_path(module) is None:
        bad.append(f"{where}: python -m {module}: no {module.replace('.', '/')}.py or "
                   f"__main__.py ({line})")
        continue
      known = set(HELP_FLAG.findall(help_runs()[module].stdout)) | {"help", "helpfull"}
    elif argv[1] == "-m" and len(argv) > 2 and argv[2] == "pytest":
      markers = (REPO / "pyproject.toml").read_text()
      for i, token in enumerate(argv[3:], 3):
        if token == "-m" and i + 1 < len(argv):
          for word in re.findall(r"\w+", argv[i + 1]):
            if word not in ("and", "or", "not") and f'"{word}:' not in markers:
              bad.append(f"{where}: pytest marker {word!r} is not registered ({line})")
      continue
    elif argv[1].endswith(".py") and not argv[1].startswith(("/", "..")):
      command, script, args = f"python {argv[1]}", REPO / argv[1], argv[2:]
      if not script.is_file():
        bad.append(f"{where}: {argv[1]} does not exist ({line})")
        continue
      if argv[1].startswith("benchmarks/"):
        known = set(ARGPARSE_FLAG.findall(script.read_text())) | {"help"}
      else:
        continue
    else:
      continue
    for token in args:
      if token.startswith("--") and not token.startswith("--config."):
        flag = token[2:].split("=", 1)[0]
        if flag not in known and not (flag.startswith("no") and flag[2:] in known):
          bad.append(f"{where}: {command} has no flag --{flag} ({line})")
  return bad


def slug(heading: str) -> str:
  """GitHub's anchor of a heading."""
  text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
  return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
  out, seen = set(), {}
  for line in prose(path).splitlines():
    m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
    if m:
      base = slug(m.group(1))
      n = seen.get(base, 0)
      seen[base] = n + 1
      out.add(base if n == 0 else f"{base}-{n}")
  return out


def test_readme_is_a_front_door():
  lines = (REPO / "README.md").read_text().splitlines()
  assert len(lines) <= README_MAX_LINES, (
      f"README.md has {len(lines)} lines; keep it at most {README_MAX_LINES} and move the "
      "details to docs/")


def test_readme_test_command_is_the_one_ci_runs():
  ci = [l.strip() for l in (REPO / ".ci" / "run").read_text().splitlines()
        if l.strip() and not l.strip().startswith("#")]
  test_command = ci[-1]
  assert test_command == 'python -m pytest -q -n 2 -m "not serial" && python -m pytest -q -m serial'
  setups = [line for lang, _, code in fenced_blocks(REPO / "README.md") if lang in SHELL
            for _, line in shell_lines(code) if line.startswith("python3 -m venv .venv")]
  assert (". .venv/bin/activate && pip install -e '.[test]' && " + test_command
          in "\n".join(setups)), "README's install-and-test command is not .ci/run's"
  assert any("pip install -e . && python -m jaxgan.main --config configs/" in s
             for s in setups), "README has no install-and-train command"


def test_pages_fence_their_code():
  """Indented code blocks escape these checks: every page fences its code."""
  for page in PAGES:
    lines = prose(page).splitlines()
    for i, line in enumerate(lines[1:], 1):
      if line.startswith("    ") and line.strip() and not lines[i - 1].strip():
        before = next((l for l in reversed(lines[:i - 1]) if l.strip()), "")
        assert re.match(r"\s*([-*+]|\d+\.)\s", before) or before.startswith("  "), (
            f"{rel(page)}:{i + 1}: an indented code block; fence it (```sh or ```python)")


def test_python_blocks_compile():
  count = 0
  for page in PAGES:
    for lang, lineno, code in fenced_blocks(page):
      if lang in ("python", "py"):
        count += 1
        # Line numbers of a SyntaxError point into the page.
        compile("\n" * (lineno - 1) + code, rel(page), "exec")
  assert count >= 5


def test_commands_name_what_exists():
  found = all_commands()
  assert len(found) >= 30, f"only {len(found)} commands found in README.md and docs/"
  bad = [problem for where, line, written in found
         for problem in problems_of(where, line, written)]
  assert not bad, "\n".join(bad)


def test_the_commands_help_runs():
  """The cheap commands run for real: `python -m jaxgan.X --help` of every command named."""
  runs = help_runs()
  assert {"jaxgan.main", "jaxgan.sample", "jaxgan.evaluate", "jaxgan.report",
          "jaxgan.benchmark"} <= set(runs)
  for module, result in runs.items():
    assert result.returncode == 0, f"python -m {module} --help: {result.stderr[-2000:]}"
    assert "--workdir" in result.stdout or "--config" in result.stdout, result.stdout[:500]


def test_links_resolve():
  bad = []
  for page in PAGES:
    for m in re.finditer(r"!?\[[^\]]*\]\(([^)\s]+)\)", prose(page)):
      target = m.group(1)
      if re.match(r"[a-z]+:", target):
        continue
      file, _, anchor = target.partition("#")
      path = (page.parent / file).resolve() if file else page
      if not path.exists():
        bad.append(f"{rel(page)}: link to {target}: no such file")
      elif anchor and path.suffix == ".md" and anchor not in anchors(path):
        bad.append(f"{rel(page)}: link to {target}: no such heading in {rel(path)}")
  assert not bad, "\n".join(bad)


@pytest.mark.parametrize("tree", ["jaxgan", "tests", "benchmarks", "configs", "notebooks"])
def test_references_to_the_pages_resolve(tree):
  """The code's pointers into the docs: docs/NAME.md files, and README: 'Section'."""
  bad = []
  for path in sorted((REPO / tree).rglob("*")):
    if path.suffix not in (".py", ".ipynb") or not path.is_file() or path == Path(__file__):
      continue
    text = path.read_text()
    for doc in re.findall(r"\bdocs/[\w-]+\.md", text):
      if not (REPO / doc).is_file():
        bad.append(f"{rel(path)}: {doc} does not exist")
    # (the message may continue in the next f-string literal: "(README: "\n f"'Few images')")
    for section in re.findall(r"""README:[\s"]*f?[\s"]*'([^']+)'""", text):
      if not any(a.startswith(slug(section)) for a in anchors(REPO / "README.md")):
        bad.append(f"{rel(path)}: README has no section {section!r}")
  assert not bad, "\n".join(bad)
