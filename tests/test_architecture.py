"""The architecture holds: no import cycles, Optuna's private names behind one seam.

Read from the source (AST), so a function-level import counts as much as a module-level one:
an import cycle hidden inside a function is still a cycle a maintainer trips over.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "tuneops"
# Optional and heavy dependencies may be imported where first needed (and only there): the
# extras, and the numeric stack (pandas, scikit-learn, scipy: 0.3-1 s and tens of MB each; joblib,
# which saves and loads models: 2 MB), which reading a study, `tune()`, `import tuneops` and the
# CLI's start must not pay for.
OPTIONAL = {"pandas", "sklearn", "scipy", "joblib", "ray", "plotly", "matplotlib", "torch", "lightgbm", "xgboost", "pyarrow", "kaleido",
            "optuna_dashboard", "psycopg", "redis", "tomli_w", "selenium", "uvicorn", "starlette",
            "fastapi", "httpx", "multiprocessing", "flaml"}
MAX_FUNCTION_LEVEL = 30


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, ast.Module]:
    return {_module_name(p): ast.parse(p.read_text(), str(p)) for p in PACKAGE.rglob("*.py")}


def _imports(name: str, tree: ast.Module, known: set[str]) -> list[tuple[str, bool, int]]:
    """``(imported tuneops module, at function level, line)`` for every import in ``tree``."""
    package = name if (PACKAGE / Path(*name.split(".")[1:]) / "__init__.py").exists() else name.rpartition(".")[0]
    top_level = {id(n) for n in tree.body} | {
        id(n) for stmt in tree.body if isinstance(stmt, (ast.If, ast.Try)) for n in ast.walk(stmt)
    }
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for target in targets:
            # the module itself and every package on its way (importing a.b.c runs a and a.b)
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                mod = ".".join(parts[:i])
                if mod in known and mod != name:
                    found.append((mod, id(node) not in top_level, node.lineno))
    return found


def _graph() -> tuple[dict[str, set[str]], list[tuple[str, int, str]]]:
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    local: list[tuple[str, int, str]] = []
    for name, tree in modules.items():
        for target, at_function, line in _imports(name, tree, known):
            graph[name].add(target)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        root = (inner.names[0].name if isinstance(inner, ast.Import) else inner.module or "").split(".")[0]
                        if root not in OPTIONAL:
                            local.append((name, inner.lineno, root or "."))
    return graph, local


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _without_package_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """A package's ``__init__`` re-exporting its submodules is not a cycle with them."""
    return {m: {t for t in ts if not (t.startswith(m + ".") or m.startswith(t + "."))} for m, ts in graph.items()}


def test_no_import_cycles_counting_function_level_imports() -> None:
    graph, _ = _graph()
    assert _cycles(_without_package_edges(graph)) == []


def test_function_level_imports_only_for_optional_dependencies_within_budget() -> None:
    _, local = _graph()
    assert len(local) <= MAX_FUNCTION_LEVEL, "\n".join(f"{m}:{line} imports {r}" for m, line, r in local)


PRIVATE_OPTUNA = re.compile(r"optuna\.[a-z_.]*\._|\._storage\b|_study_id\b|_trial_id\b|_thread_local|"
                            r"_cached_frozen_trial|_get_latest_trial|_tell_with_warning|_CachedStorage")


def test_private_optuna_names_only_in_the_seam() -> None:
    hits = [
        f"{p.relative_to(SRC)}:{i}: {line.strip()}"
        for p in PACKAGE.rglob("*.py") if p.name != "_optuna.py"
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if PRIVATE_OPTUNA.search(line)
    ]
    assert hits == []


def test_the_checker_sees_a_cycle() -> None:
    """The cycle finder is not vacuous: a two-module loop is found."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]


# A message that opens with a CLI flag ("--trial: ...") tells a Python caller of the library about
# a flag they never passed; the library names the parameter and then the flag: "trial (--trial)".
# Only the CLI (tuneops/cli) speaks in flags alone.
_FLAG_FIRST = re.compile(r"--[a-z][a-z0-9-]*(:|/--| auto:)")


def _flag_first_messages(tree: ast.Module) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        text = None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        elif isinstance(node, ast.JoinedStr) and node.values:
            first = node.values[0]
            text = first.value if isinstance(first, ast.Constant) else None
        elif isinstance(node, ast.keyword) and node.arg in _NAMING:
            text = f"{node.value.value}:" if isinstance(node.value, ast.Constant) else None
        elif isinstance(node, ast.FunctionDef):  # def read_batch(path, *, field="--batch")
            args = node.args
            named = [
                *zip(args.args[::-1], args.defaults[::-1], strict=False),  # defaults: the last
                *zip(args.kwonlyargs, args.kw_defaults, strict=True),
            ]
            lines += [d.lineno for a, d in named if a.arg in _NAMING
                      and isinstance(d, ast.Constant) and _FLAG_FIRST.match(f"{d.value}:")]
        if isinstance(text, str) and _FLAG_FIRST.match(text):
            lines.append(getattr(node, "lineno", 0))
    return sorted(set(lines))


_NAMING = ("field", "option", "what")  # the parameters that name the caller's input in a message


def test_library_messages_name_the_parameter_before_the_flag() -> None:
    hits = [
        f"{name}:{line}"
        for name, tree in _modules().items()
        if not name.startswith("tuneops.cli")
        for line in _flag_first_messages(tree)
    ]
    assert hits == [], "write 'name (--flag): ...' in library messages: " + ", ".join(hits)


def test_the_flag_checker_sees_a_flag_first_message() -> None:
    tree = ast.parse(
        'raise UsageError(f"--trial: no trial {n}")\nf(x, field="--batch")\n'
        'def read(path, *, field="--batch"): pass\n'
    )
    assert _flag_first_messages(tree) == [1, 2, 3]
    assert _flag_first_messages(ast.parse('m = f"trial (--trial): no trial {n}"')) == []
