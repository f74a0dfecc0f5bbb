"""The package stays readable: small modules, and a docstring on every stage saying what it
owns. (Which stage may import which is checked by `lint-imports`, configured in
pyproject.toml.)"""

import ast
from pathlib import Path

import makeflow

PACKAGE = Path(makeflow.__file__).parent
MOST_LINES = 480  # about 450; a module past this holds more than one idea


def test_no_module_is_long():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MOST_LINES}
    assert not long, f"split these modules: {long}"


def test_every_stage_says_what_it_owns():
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        where = f"{init.parent.name}/__init__.py"
        assert doc and "import" in doc, f"{where}: say what it owns and what it may import"
