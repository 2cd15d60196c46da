"""The import graph runs one way, drawn from the code's own imports (no TensorFlow, no imports of the package).

Floors, lowest first: ``edge`` (under all; never imports kerasseg), the backend, ``kerasseg.models``, the run
directory (``kerasseg.rundir``), ``kerasseg.data``, ``kerasseg.training``, ``kerasseg.export``, then the entry
points (the scripts at the root and the ``__main__`` modules). A module imports only from its own floor or
below, and no two files import each other, directly or round a circle. Function-level imports count, and so
does ``importlib.import_module("...")`` with a literal name. As in ``../shared/tools/import_cycles.py``, a
module's import of its own package (``from kerasseg.training import report`` in ``kerasseg.training.loop``)
names the module, not the package's ``__init__``.
"""
import ast
import functools
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("edge", "kerasseg")
FLOORS = ("edge", "kerasseg", "kerasseg.backend", "kerasseg.models", "kerasseg.rundir", "kerasseg.data",
          "kerasseg.training", "kerasseg.export")
ENTRY_POINTS = len(FLOORS)
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, pathlib.Path]:
    """Module name -> file, for every module of the packages and every script at the root."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    for path in ROOT.glob("*.py"):
        found[path.stem] = path
    return found


def _named(node) -> list[tuple[str, int]]:
    """(module name, level) pairs an import statement or an ``importlib.import_module("...")`` call names."""
    if isinstance(node, ast.Import):
        return [(alias.name, 0) for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        return [(base, node.level)] + [(f"{base}.{alias.name}" if base else alias.name, node.level)
                                       for alias in node.names]
    if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module" and node.args \
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
        return [(node.args[0].value, 0)]
    return []


@functools.lru_cache(maxsize=None)
def _tree(path: pathlib.Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _imports(name: str, path: pathlib.Path, known) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(_tree(path)):
        for target, level in _named(node):
            if level:
                parts = package.split(".")[: len(package.split(".")) - level + 1]
                target = ".".join(parts + [target] if target else parts)
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                out.add(target)  # ``from package import module`` inside the package is not on package/__init__
    return out


@functools.lru_cache(maxsize=1)
def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _floor(module: str) -> int:
    if "." not in module and module not in PACKAGES or module.endswith(".__main__"):
        return ENTRY_POINTS
    matches = [i for i, floor in enumerate(FLOORS) if module == floor or module.startswith(floor + ".")]
    assert matches, f"{module}: on no floor; add its package to FLOORS in {__file__}"
    return max(matches)


def _cycle(graph) -> list[str] | None:
    """One circle of imports between files, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        stack.pop()
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_file_imports_itself_round_a_circle():
    cycle = _cycle(_graph())
    assert cycle is None, " -> ".join(cycle)


def test_every_import_goes_to_the_same_floor_or_below():
    upward = sorted(f"{module} (floor {_floor(module)}) imports {target} (floor {_floor(target)})"
                    for module, targets in _graph().items() for target in targets if _floor(target) > _floor(module))
    assert not upward, "\n".join(upward)


def test_the_floor_check_sees_function_level_and_importlib_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import importlib\n\ndef f():\n    from kerasseg.training import config\n"
                      "    return importlib.import_module('kerasseg.export.modes')\n")
    known = {"kerasseg.training", "kerasseg.training.config", "kerasseg.export.modes", "importlib"}
    assert _imports("kerasseg.models.m", source, known) == known
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert [_floor(m) for m in ("edge.artifact", "kerasseg.models.blocks", "kerasseg.rundir", "train")] == \
        [0, 3, 4, ENTRY_POINTS]


def test_no_function_is_over_one_screen():
    long = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "_generated" in path.parts:  # flatc's output
                continue
            for node in ast.walk(_tree(path)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} "
                                f"({node.end_lineno - node.lineno + 1} lines)")
    assert not long, "\n".join(long)
