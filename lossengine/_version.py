__version__ = "0.1.0"   # keep equal to pyproject.toml's version (tests/test_package.py checks)
