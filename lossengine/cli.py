"""The ``lossengine`` command: list, info, check, new-plugin, bench."""
from __future__ import annotations

import argparse
import os
import platform
import sys
import sysconfig

import numpy as np


def _cmd_list(args: argparse.Namespace) -> int:
    from . import registry

    rows = []
    for name in registry.names():
        cls = registry.get(name)
        # registry.source's own word: "lossengine" for built-ins, else the distribution's name.
        rows.append((name, cls.__name__, ", ".join(cls.arguments), ", ".join(cls.differentiable),
                     registry.source(name)))
    header = ("name", "class", "arguments", "differentiable", "source")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    failures = registry.failures()
    refused = [(plugin, line) for plugin, reason in sorted(failures.items()) for line in reason.splitlines()
               if line.startswith("loss ") and (" refused: " in line or " rejected by the validator" in line)]
    if refused:
        print("\nlosses not served (rejected by the validator, or refused because the name was taken):")
        for plugin, line in refused:
            print(f"  {plugin}: {line.rstrip(':')}")
    if failures:
        print("\nplugins that failed to load, whose losses the validator rejected, or whose names collided:")
        for plugin, reason in sorted(failures.items()):
            lines = reason.splitlines()
            print(f"  {plugin}: {lines[0]}")
            for line in lines[1:]:
                print(f"      {line}")
    return 0


def build_info() -> dict:
    """What ``lossengine info`` prints, as a dict (also used by the tests)."""
    from . import __version__, _elementwise, _isa
    from ._threads import get_num_threads, thread_count_source

    return {
        "lossengine": __version__,
        "openmp": "on" if _elementwise.openmp_enabled() else "off (serial kernels)",
        "threads": get_num_threads(),
        "threads from": thread_count_source(),
        "omp_max_threads": _elementwise.max_threads(),
        "compiler": sysconfig.get_config_var("CC"),
        "compile flags": " ".join(_elementwise.compile_flags()),
        "kernel variant": _isa.describe(),
        "variant target": _kernel_variant(_elementwise.compile_flags()),
        "fast path": "elementwise ElementwiseKernel.fast (C-contiguous native float32/float64 arrays of one "
                     "dtype and shape), classification RowKernel.fast ((N, C) scores, (N,) int64 class "
                     "indices); everything else: the general path",
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _kernel_variant(flags: list[str]) -> str:
    """The -march target of one kernel build, from its compile flags."""
    march = [f.split("=", 1)[1] for f in flags if f.startswith("-march=")]
    return march[-1] if march else "baseline (compiler default ISA)"


def _cmd_info(args: argparse.Namespace) -> int:
    from .integrations import available

    for key, value in build_info().items():
        print(f"{key + ':':18}{value}")
    for name, version in available().items():
        print(f"{name + ':':18}{version or 'not installed'} (lossengine.integrations.{name})")
        if name == "jax" and version:
            print(f"{'jax calls:':18}{_jax_route()}")
    return 0


def _jax_route() -> str:
    """How wrapped losses reach the kernels in JAX programs: the FFI handler or the fallback, and why."""
    try:
        from .integrations import jax as lejax
    except Exception as exc:                 # a broken jax install: say so, info still prints the rest
        return f"unavailable ({type(exc).__name__}: {exc})"
    return lejax.describe_backend()


def _cmd_check(args: argparse.Namespace) -> int:
    import json

    from . import registry
    from .validation import check

    names = registry.names() if args.all or not args.names else args.names
    failed = 0
    results = []
    for name in names:
        try:
            cls = _loss_class(name)
        except (KeyError, ImportError, AttributeError) as exc:
            message = exc.args[0] if exc.args else repr(exc)
            results.append({"name": name, "ok": False, "error": str(message)})
            if not args.json:
                print(message)
            failed += 1
            continue
        report = check(cls)
        results.append({"name": name, **report.to_dict()})
        if not args.json:
            print(f"{name}: {report}" if not report.ok else f"{name}: ok ({len(report.checks_run)} checks)")
        failed += not report.ok
    if args.json:
        print(json.dumps({"ok": not failed, "losses": results}, indent=2))
    return 1 if failed else 0


def _loss_class(name: str) -> type:
    """A registry name, or ``module:Class`` for a loss not registered (yet): a plugin in the making,
    or one the registry rejected (whose reason is then in the error)."""
    from . import registry

    if ":" in name:
        import importlib

        module, _, qualname = name.partition(":")
        # As the docs promise: a plugin in the making is found in the current folder, uninstalled.
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return obj
    try:
        return registry.get(name)
    except KeyError:
        rejected = [f"{plugin}: {reason}" for plugin, reason in registry.failures().items()
                    if f"loss {name!r}" in reason]
        if rejected:
            raise KeyError(f"{name} was rejected when its plugin loaded:\n" + "\n".join(rejected)) from None
        raise


def _cmd_new_plugin(args: argparse.Namespace) -> int:
    from ._scaffold import class_name, new_plugin

    try:
        root = new_plugin(args.name, args.dir, compiled=args.compiled, rowwise=args.rowwise)
    except (ValueError, FileExistsError) as exc:
        print(f"lossengine new-plugin: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {root}; next: cd {root} && lossengine check lossengine_{args.name}:{class_name(args.name)}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main

    return bench_main(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lossengine", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="registered losses: arguments, differentiable arguments, source") \
        .set_defaults(run=_cmd_list)
    sub.add_parser("info", help="version, OpenMP, threads, compiler flags, NumPy").set_defaults(run=_cmd_info)
    p_check = sub.add_parser("check", help="run the validator (exit 1 on any failure)")
    p_check.add_argument("names", nargs="*", help="registry names, or module:Class for an unregistered loss (default: all)")
    p_check.add_argument("--all", action="store_true", help="check every registered loss")
    p_check.add_argument("--json", action="store_true", help="print the reports as JSON (for CI)")
    p_check.set_defaults(run=_cmd_check)
    p_new = sub.add_parser("new-plugin", help="write the skeleton of a plugin distribution (lossengine-NAME)")
    p_new.add_argument("name", help="lowercase identifier; the loss registers as NAME_loss")
    kind = p_new.add_mutually_exclusive_group()
    kind.add_argument("--compiled", action="store_true", help="a Cython per-element kernel instead of NumPy")
    kind.add_argument("--rowwise", action="store_true",
                      help="a Cython per-row classification kernel (scores and a class index per row)")
    p_new.add_argument("--dir", default=".", help="where to create the distribution's folder")
    p_new.set_defaults(run=_cmd_new_plugin)
    from .bench import add_subcommand

    add_subcommand(sub).set_defaults(run=_cmd_bench)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
