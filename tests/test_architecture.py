"""The package's import structure: no private name crosses a module boundary."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "skdcec"
MODULES = sorted(PACKAGE.glob("*.py"))


def _skdcec_imports(path):
    """(module, name) for every name ``path`` imports from a skdcec module, lazy imports included."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "skdcec":
            for alias in node.names:
                yield node.module, alias.name


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_no_private_name_imported_from_another_module(path):
    # A private module (``skdcec._training``) may be imported from; a private
    # name (one that starts with an underscore) may not.
    private = [
        f"{module}.{name}"
        for module, name in _skdcec_imports(path)
        if name.startswith("_") and not name.endswith("__")
    ]
    assert not private, f"{path.name} imports private names {private}"


def _imported_modules(path, names):
    """The skdcec modules that ``path`` imports, lazy imports included; ``skdcec`` is __init__.py."""
    for module, name in _skdcec_imports(path):
        yield f"{module}.{name}" if module == "skdcec" and name in names else module


def test_no_import_cycle():
    """The import graph of skdcec, the package's __init__ included, has no cycle."""
    names = {path.stem for path in MODULES}
    graph = {
        "skdcec" if path.stem == "__init__" else f"skdcec.{path.stem}": set(_imported_modules(path, names))
        for path in MODULES
    }
    visiting, done = [], set()

    def visit(module):
        if module in visiting:
            cycle = visiting[visiting.index(module) :] + [module]
            raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
        if module in done:
            return
        visiting.append(module)
        for imported in sorted(graph.get(module, ())):
            visit(imported)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


# One idea per module: none grows past this many lines.
MAX_MODULE_LINES = 700
# The torch core: networks, losses, training loops and data on the device.
TORCH_CORE = (
    "_augmentation",
    "_autoencoder",
    "_clustering",
    "_data",
    "_device",
    "_inference",
    "_pretraining",
    "_training",
)


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_no_module_is_longer_than_the_limit(path):
    n_lines = len(path.read_text(encoding="utf-8").splitlines())
    assert n_lines <= MAX_MODULE_LINES, f"{path.name} has {n_lines} lines; split it along its seams"


@pytest.mark.parametrize("name", TORCH_CORE)
def test_torch_core_knows_no_scikit_learn(name):
    """The torch core imports neither scikit-learn nor a skdcec module outside the core."""
    path = PACKAGE / f"{name}.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert not [module for module in imported if module.split(".")[0] == "sklearn"]
    outside = [
        module
        for module in imported
        if module.startswith("skdcec.") and module.split(".")[1] not in (*TORCH_CORE, "_version")
    ]
    assert not outside, f"{name} imports {outside}"
