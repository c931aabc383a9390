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
    private = [f"{module}.{name}" for module, name in _skdcec_imports(path) if name.startswith("_") and not name.endswith("__")]
    assert not private, f"{path.name} imports private names {private}"
