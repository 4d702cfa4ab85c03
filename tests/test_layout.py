"""The layout shows the architecture (README "Where to look"), and stays so: no import
circles between modules, the shared core (`portal/`) imports neither app, subscriptions
does not import approvals (approvals acts on subscriptions, not the other way round), and
no module outgrows the house's size."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("portal", "subscriptions", "approvals", "outbox")
MAX_LINES = 480
# The pure money math reads best whole, beside DOMAIN.md (STYLE.md: it may stay a little over).
LARGER = {"subscriptions/billing.py": 520}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports, at any level of the code (imports
    under `if TYPE_CHECKING:` only name types and are left out)."""
    mods = modules()

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        typing_only = {
            id(node)
            for branch in ast.walk(tree)
            if isinstance(branch, ast.If) and "TYPE_CHECKING" in ast.unparse(branch.test)
            for statement in branch.body
            for node in ast.walk(statement)
        }
        package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package[: len(package) - node.level + 1]
                    base = ".".join([*parent, *([node.module] if node.module else [])])
                names = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                target = owner(name)
                if target and target != mod:
                    graph[mod].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: each as the path from a module back to itself."""
    found, done = [], set()

    def visit(mod: str, path: list[str]) -> None:
        for target in sorted(graph[mod]):
            if target in path:
                found.append([*path[path.index(target) :], target])
            elif target not in done:
                visit(target, [*path, target])
        done.add(mod)

    for mod in sorted(graph):
        if mod not in done:
            visit(mod, [mod])
    return found


def test_no_import_circles():
    assert cycles(import_graph()) == []


def test_the_core_imports_neither_app_and_subscriptions_does_not_import_approvals():
    graph = import_graph()
    crossings = sorted(
        f"{mod} -> {target}"
        for mod, targets in graph.items()
        for target in targets
        if (mod.startswith("portal") and target.startswith(("subscriptions", "approvals")))
        or (mod.startswith("subscriptions") and target.startswith("approvals"))
    )
    assert crossings == []


def test_no_module_imports_a_private_name_from_another():
    mods = modules()
    borrowed = sorted(
        f"{mod}: {node.module}.{alias.name}"
        for mod, path in mods.items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom)
        and node.module
        and node.module.split(".")[0] in PACKAGES
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    )
    assert borrowed == []


def test_no_module_outgrows_the_house_size():
    too_long = {
        str(path.relative_to(ROOT)): lines
        for path in modules().values()
        if (lines := len(path.read_text().splitlines()))
        > LARGER.get(str(path.relative_to(ROOT)), MAX_LINES)
    }
    assert too_long == {}
