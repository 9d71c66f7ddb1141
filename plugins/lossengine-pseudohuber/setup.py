"""Builds lossengine_pseudohuber._kernel; lossengine's docs/plugins.md, "4. The build", explains the lines below."""
import runpy, subprocess, sys

try:
    from lossengine.extending import build_plugin
except ImportError:  # pip's build isolation: lossengine is not on PyPI, so ask the python pip installs into (-E)
    where = subprocess.check_output([sys.executable, "-Ec", "import lossengine._plugin_build as b; print(b.__file__)"])
    build_plugin = runpy.run_path(where.decode().strip())["build_plugin"]
build_plugin("lossengine_pseudohuber._kernel")
