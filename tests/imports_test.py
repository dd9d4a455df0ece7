"""The package's structure: no import cycle among jaxgan modules (function-local imports
count as edges), every module on its floor of docs/architecture.md, and every
function-local import of jaxgan saying why it is local."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "jaxgan"

# docs/architecture.md: a module may import modules on its own floor or below.
FLOORS = {
    "jaxgan.errors": 1, "jaxgan.images": 1, "jaxgan.kernels": 1, "jaxgan.hostmem": 1,
    "jaxgan.distributed": 1, "jaxgan.jsonl_writer": 1, "jaxgan.lock": 1,
    "jaxgan.checks": 2, "jaxgan.sharding": 2, "jaxgan.checkpointing": 2, "jaxgan.nn": 2,
    "jaxgan.families": 3, "jaxgan.data": 3,
    "jaxgan.config": 4, "jaxgan.input_pipeline": 4,
    "jaxgan.workdir": 5,
    "jaxgan.sampling": 6, "jaxgan.cli": 6,
    "jaxgan.metrics": 7,
    "jaxgan.report": 8, "jaxgan.sample": 8, "jaxgan.evaluate": 8,
    "jaxgan.training": 9,
    "jaxgan.main": 10, "jaxgan.benchmark": 10,
}
# Why a function-local import of jaxgan may be local (the comment on its line says which).
LOCAL_REASONS = ("(TensorFlow)", "(fast start", "(optional")


def module_name(path: Path) -> str:
  parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
  if parts[-1] == "__init__":
    parts.pop()
  return ".".join(parts)


def modules() -> dict[str, Path]:
  return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, known: dict[str, Path]):
  """(target module, line, whether inside a function) of every import of jaxgan in `path`."""
  tree = ast.parse(path.read_text(), str(path))
  local_lines = set()
  for node in ast.walk(tree):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      for inner in ast.walk(node):
        if isinstance(inner, (ast.Import, ast.ImportFrom)):
          local_lines.add(inner.lineno)
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
               for a in node.names]
    else:
      continue
    for name in names:
      if name == "jaxgan" or name.startswith("jaxgan."):
        yield name, node.lineno, node.lineno in local_lines


def graph() -> dict[str, set[str]]:
  known = modules()
  return {m: {t for t, _, _ in imports(p, known) if t in known and t != m}
          for m, p in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
  """The strongly connected components of more than one module (Tarjan)."""
  index, low, stack, on_stack, out = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(edges.get(v, ())):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        out.append(sorted(component))

  for v in sorted(edges):
    if v not in index:
      visit(v)
  return out


def floor(module: str) -> int:
  for prefix in sorted(FLOORS, key=len, reverse=True):
    if module == prefix or module.startswith(prefix + "."):
      return FLOORS[prefix]
  raise AssertionError(f"{module} has no floor in FLOORS (docs/architecture.md)")


def test_cycle_finder_finds_a_cycle():
  assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
  assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
  found = cycles(graph())
  assert not found, "import cycles (function-local imports count): " + "; ".join(
      " <-> ".join(c) for c in found)


def test_every_module_imports_only_its_floor_or_below():
  up = [f"{m} (floor {floor(m)}) -> {t} (floor {floor(t)})"
        for m, targets in graph().items() for t in sorted(targets) if floor(t) > floor(m)]
  assert not up, "imports that reach up a floor: " + "; ".join(up)


def test_function_local_imports_say_why():
  known, bad, count = modules(), [], 0
  for m, path in known.items():
    lines = path.read_text().splitlines()
    for _, line, local in imports(path, known):
      if local:
        count += 1
        if not any(reason in lines[line - 1] for reason in LOCAL_REASONS):
          bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}")
  assert not bad, f"function-local imports of jaxgan without a reason {LOCAL_REASONS}: {bad}"
  assert count <= 14, f"{count} function-local imports of jaxgan: keep them few"
