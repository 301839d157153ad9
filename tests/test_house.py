"""The house rules, held by tests of the code itself: small modules and functions, no private names
across modules, no import cycle, packages that depend one way, tests that mirror the code, ruff."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT
from conftest import missing as report_missing

PACKAGE = ROOT / "bpjax"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80

RANK = {
    "errors": 0,
    "io": 1,
    "check": 1,
    "data": 2,
    "testing": 2,
    "layers": 3,
    "models": 4,
    "training": 5,
    "bench": 6,
    "cli": 7,
}
"""Which part may import which: a module imports only from parts of a lower rank or its own part.
The base modules (errors, io, check, data, testing) import no layer, model, training or command; a layer imports
nothing from models, training or the cli; a model nothing from training or the cli; nothing imports the cli."""
EXEMPT = {"bpjax", "bpjax.__main__", "bpjax.compat", "bpjax.nanogpt"}
"""The package's face: its __init__ re-exports every part, __main__ runs the cli, compat aliases old
paths, nanogpt is :mod:`bpjax.models.nanogpt` under the short name the GPT's users import."""


def modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PACKAGE.rglob("*.py")):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = modules()


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def imports(name: str, path: Path):
    """``(line, imported module, imported names)`` for every import of a bpjax module in ``path``, at
    any depth (a function's lazy import counts): ``from X import a`` imports X.a where that is a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if _is_package(name) else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("bpjax"):
                    yield node.lineno, a.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("bpjax"):
                continue
            names = [a.name for a in node.names]
            subs = [n for n in names if f"{target}.{n}" in MODULES]
            if len(subs) < len(names):  # a name of the module itself (a submodule's parent is imported anyway)
                yield node.lineno, target, [n for n in names if n not in subs]
            for n in subs:
                yield node.lineno, f"{target}.{n}", []


def graph() -> dict[str, set[str]]:
    return {m: {t for _, t, _ in imports(m, p) if t in MODULES and t != m} for m, p in MODULES.items()}


def part(name: str) -> str:
    return name.split(".")[1] if name.count(".") else ""


def test_no_module_is_over_400_lines():
    long = {
        m: n for m, p in MODULES.items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_is_over_80_lines():
    long = []
    for m, p in MODULES.items():
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{m}.{node.name} ({n} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_no_module_imports_another_modules_private_name():
    found = []
    for m, p in MODULES.items():
        for line, target, names in imports(m, p):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private or any(seg.startswith("_") and not seg.startswith("__") for seg in target.split(".")):
                found.append(f"{m}:{line} imports {private or target} from {target}")
        tree = ast.parse(p.read_text(encoding="utf-8"))
        bound = {
            a.asname or a.name
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and (n.level or (n.module or "").startswith("bpjax"))
            for a in n.names
            if f"{n.module}.{a.name}" in MODULES or n.level
        }
        for n in ast.walk(tree):
            if (
                isinstance(n, ast.Attribute)
                and isinstance(n.value, ast.Name)
                and n.value.id in bound
                and n.attr.startswith("_")
                and not n.attr.startswith("__")
            ):
                found.append(f"{m}:{n.lineno} uses {n.value.id}.{n.attr}")
    assert not found, "\n".join(found)


def test_there_is_no_import_cycle():
    g = graph()
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(g[m]):
            if state.get(t) == "open":
                cycles.append(stack[stack.index(t) :] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(g):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_packages_depend_one_way():
    wrong = []
    for m, targets in graph().items():
        if m in EXEMPT:
            continue
        for t in targets:
            if t in EXEMPT:
                wrong.append(f"{m} imports {t}")
            elif part(t) != part(m) and RANK[part(t)] >= RANK[part(m)]:
                wrong.append(f"{m} imports {t}")
    assert not wrong, "\n".join(wrong)
    assert graph()["bpjax.__main__"] == {"bpjax.cli"}


def test_every_module_has_its_test_module():
    """tests/ mirrors bpjax/: bpjax/layers/dense.py is tested by tests/layers/test_dense.py."""
    missing = []
    for p in MODULES.values():
        if p.name in ("__init__.py", "__main__.py"):
            continue
        rel = p.relative_to(PACKAGE)
        test = ROOT / "tests" / rel.parent / f"test_{rel.stem}.py"
        if not test.is_file():
            missing.append(str(test.relative_to(ROOT)))
    assert not missing, f"code modules without a test module: {missing}"


def test_ruff_check_and_format_are_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        report_missing("ruff is not installed: it is in the dev extra, pip install -e '.[dev]'")  # a failure in CI
    for args in (["check", "--extend-select", "RUF100", "."], ["format", "--check", "."]):
        r = subprocess.run([ruff, *args], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, f"ruff {' '.join(args)}:\n{r.stdout}{r.stderr}"
