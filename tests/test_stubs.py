"""The generated type stubs describe the compiled modules as built: every public name, every kernel
class with its options' names in order."""
import ast
import inspect
from pathlib import Path

import pytest

import lossengine
from lossengine import _classification, _elementwise, _embedding

PACKAGE = Path(lossengine.__file__).parent


def _stub(module):
    path = PACKAGE / (module.__name__.rsplit(".", 1)[1] + ".pyi")
    if not path.exists():
        pytest.skip(f"{path.name} is rendered by the build (setup.py build_ext)")
    return ast.parse(path.read_text())


@pytest.mark.parametrize("module, base", [(_elementwise, "ElementwiseKernel"),
                                          (_classification, "RowKernel"), (_embedding, "RowKernel")])
def test_stub_lists_every_kernel_with_its_options(module, base):
    tree = _stub(module)
    stub_classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    kernels = {name for name, obj in vars(module).items()
               if inspect.isclass(obj) and issubclass(obj, getattr(module, base)) and name != base}
    assert kernels, "no kernel classes found"
    assert kernels <= set(stub_classes), f"missing from the stub: {sorted(kernels - set(stub_classes))}"
    for name in kernels:
        if name == "Plugin":
            continue
        init = next(n for n in stub_classes[name].body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
        assert tuple(a.arg for a in init.args.args[1:]) == getattr(module, name).fields, name


@pytest.mark.parametrize("module", [_elementwise, _classification, _embedding])
def test_stub_names_exist_in_the_module(module):
    tree = _stub(module)
    names = [node.name for node in tree.body if isinstance(node, (ast.ClassDef, ast.FunctionDef))]
    names += [node.target.id for node in tree.body if isinstance(node, ast.AnnAssign)]
    missing = [n for n in names if not hasattr(module, n)]
    assert not missing, f"the stub declares names the module lacks: {missing}"
