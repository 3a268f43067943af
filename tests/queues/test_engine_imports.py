"""The delivery engine's modules import in one direction, at the top: no cycle, no function-level import of a module
of the queues app (a sibling import inside a function is a cycle waiting to be noticed)."""

import ast
from pathlib import Path

import queues.delivery

ENGINE = Path(queues.delivery.__file__).parent
APP = "queues"


def _module_name(path):
    parts = path.relative_to(ENGINE.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path):
    """[(imported module, at top level?)] of one file, relative imports resolved."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # `from . import lease` imports the module queues.delivery.lease
            found += [(f"{base}.{alias.name}" if not node.module else base, id(node) in top) for alias in node.names]
    return found


def _engine_files():
    return sorted(ENGINE.rglob("*.py"))


def test_no_function_level_import_of_the_app():
    offenders = [
        f"{_module_name(path)} imports {module} inside a function"
        for path in _engine_files()
        for module, at_top in _imports(path)
        if not at_top and (module == APP or module.startswith(APP + "."))
    ]
    assert offenders == []


def test_the_engine_import_graph_has_no_cycle():
    modules = {_module_name(path): path for path in _engine_files()}

    def engine_module(name):
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {
        name: {engine_module(module) for module, _ in _imports(path) if engine_module(module)} - {name}
        for name, path in modules.items()
    }
    # A package's __init__ is imported by every module under it: only its own imports count as its edges.
    state, cycles = {}, []

    def visit(node, trail):
        state[node] = "visiting"
        for nxt in graph[node]:
            if nxt.startswith(node + ".") or node.startswith(nxt + "."):
                continue  # a package and its modules
            if state.get(nxt) == "visiting":
                cycles.append(trail[trail.index(nxt) :] + [nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for name in graph:
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_the_scheduler_imports_nothing_of_the_worker():
    """The scheduler enqueues the batch job by its dotted name (queues.constants.DELIVER_BATCH_JOB)."""
    imported = {module for module, _ in _imports(ENGINE / "scheduler.py")}
    assert not imported & {"queues.delivery.worker", "queues.delivery.processor"}
