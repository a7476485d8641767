"""The house rules of the package, measured: `python tools/house.py` prints each and exits 1
if any is broken (tests/unit/test_house.py runs it).

- no module over 400 lines, no function over 80 lines;
- imports point down the stage order (serve/report -> training -> evaluation/export ->
  generation -> runs -> config -> data/optim -> model -> core), and no two modules import each
  other (directly or through others);
- no `sys.path` manipulation in the entry points (train.py, scripts/, benchmarks/);
- no run-dir path spelled outside parrot_lm/runs/run_dir.py;
- one atomic-write implementation: `os.replace` / `os.rename` / `os.fsync` only in
  parrot_lm/core/io.py.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "parrot_lm"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
# Top to bottom; a module may import its own stage, a stage on its line, or any stage below.
STAGES = [
    ("serve", "report", "planning"),
    ("training",),
    ("evaluation", "export"),
    ("generation",),
    ("runs",),
    ("config",),
    ("data", "optim"),
    ("model",),
    ("core",),
]
RUN_DIR_NAMES = {"checkpoints", "last.ckpt", "run_config.yaml", ".hydra", "tensorboard", "eval"}
RUN_DIR_OWNER = PACKAGE / "runs" / "run_dir.py"
ATOMIC_OWNER = PACKAGE / "core" / "io.py"
ATOMIC_CALLS = {("os", "replace"), ("os", "rename"), ("os", "fsync")}


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def stage_of(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None
    for level, names in enumerate(STAGES):
        if parts[1] in names:
            return level
    return None


def imports_of(tree: ast.AST, module: str, known: dict[str, Path]) -> set[str]:
    """The package modules `module` imports anywhere in its body (functions included)."""
    out = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:  # relative import
                base = ".".join(module.split(".")[: -node.level] + [node.module])
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module and name != "parrot_lm":
                out.add(name)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def findings(tree: ast.AST, path: Path) -> dict[str, list[str]]:
    """Long functions, run-dir path building (`x / "checkpoints"`) and atomic-write
    primitives (`os.replace(...)`) in one module, each as `file:line what`."""
    where = path.relative_to(ROOT)
    found: dict[str, list[str]] = {"long": [], "run_dir": [], "atomic": []}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found["long"].append(f"{where}:{node.lineno} {node.name} ({length} lines)")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            name = node.right.value if isinstance(node.right, ast.Constant) else None
            if name in RUN_DIR_NAMES:
                found["run_dir"].append(f"{where}:{node.lineno} / {name!r}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
            if (owner, node.func.attr) in ATOMIC_CALLS:
                found["atomic"].append(f"{where}:{node.lineno} {owner}.{node.func.attr}")
    return found


def entry_point_files() -> list[Path]:
    return [ROOT / "train.py", *sorted((ROOT / "scripts").glob("*.py"))] + sorted(
        (ROOT / "benchmarks").glob("*.py")
    )


def check() -> dict[str, list[str]]:
    """Every broken rule, by rule (an empty list: the rule holds)."""
    known = modules()
    problems: dict[str, list[str]] = {
        "modules over 400 lines": [],
        "functions over 80 lines": [],
        "imports pointing up the stages": [],
        "import cycles": [],
        "sys.path in entry points": [],
        "run-dir paths outside RunDir": [],
        "atomic-write primitives outside core/io.py": [],
    }
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        text = path.read_text()
        tree = ast.parse(text)
        lines = text.count("\n")
        if lines > MAX_MODULE_LINES:
            problems["modules over 400 lines"].append(f"{path.relative_to(ROOT)} ({lines})")
        found = findings(tree, path)
        problems["functions over 80 lines"] += found["long"]
        graph[name] = imports_of(tree, name, known)
        for target in sorted(graph[name]):
            mine, theirs = stage_of(name), stage_of(target)
            same = name.split(".")[:2] == target.split(".")[:2]
            if mine is not None and theirs is not None and theirs < mine and not same:
                problems["imports pointing up the stages"].append(f"{name} -> {target}")
        if path != RUN_DIR_OWNER:
            problems["run-dir paths outside RunDir"] += found["run_dir"]
        if path != ATOMIC_OWNER:
            problems["atomic-write primitives outside core/io.py"] += found["atomic"]
    problems["import cycles"] = [" <-> ".join(c) for c in cycles(graph)]
    for path in entry_point_files():
        if "sys.path" in path.read_text():
            problems["sys.path in entry points"].append(str(path.relative_to(ROOT)))
    return problems


def main() -> int:
    problems = check()
    for rule, found in problems.items():
        print(f"{'ok ' if not found else 'BAD'} {rule}: {len(found)}")
        for item in found:
            print(f"      {item}")
    return 1 if any(problems.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
