"""The documentation's page per built-in loss, generated from the registry and each loss's declaration.

A page is: what the declaration says (class, registry key, functional signature, arguments with shapes
and domains, options with defaults and ranges, Hessian, declared deviations, how it splits into
chunks), the loss's hand-written note (docs/loss_notes/<registry name>.md: formula, gradient,
Hessian, torch's kept quirks) and a runnable example. The losses come from the registry (its
built-ins, ``registry.source(name) == "lossengine"``), so a built-in added later gets its page from
its note alone; tests/test_docs.py checks that every registered built-in has one.

Used as an MkDocs hook (mkdocs.yml ``hooks:``): ``on_config`` lists the pages in the navigation and
``on_files`` adds them to the build, so generated pages are never committed and never stale.
``python docs/loss_pages.py OUT_DIR`` writes them to a folder instead.
"""
from __future__ import annotations

import inspect
import sys
from pathlib import Path

import lossengine as le
from lossengine import _docstrings
from lossengine.declaration import declared_options

NOTES = Path(__file__).resolve().parent / "loss_notes"
SECTION = "Losses"

_DECOMPOSES = {
    "elements": "any chunking: each element's loss depends on that element only",
    "rows": "along the leading (batch) axis: each row's loss depends on its own classes",
    "feature-rows": "along the leading axis: each row's loss depends on its own features (last axis)",
    None: "does not split (Dask runs it on the whole arrays)",
}


def builtin_losses() -> list[type]:
    """The registry's built-in losses, in registry order."""
    return [le.registry.get(name) for name in le.registry.names() if le.registry.source(name) == "lossengine"]


def note_path(cls: type) -> Path:
    return NOTES / f"{cls.name}.md"


def page_path(cls: type) -> str:
    return f"losses/{cls.name}.md"


def _summary(cls: type) -> str:
    """The class's own text (before the generated sections), joined into paragraphs."""
    text = _docstrings.own_text(cls)
    return "\n\n".join(" ".join(p.split()) for p in text.split("\n\n"))


def _facts(cls: type) -> list[str]:
    functional = getattr(le.functional, cls.name, None)
    signature = f"{cls.name}{inspect.signature(functional)}" if functional else "(none)"
    hessian = "yes" if _docstrings.has_hessian(cls) else "no"
    surrogate = getattr(cls, "hessian_surrogate", None)
    if _docstrings.has_hessian(cls) and surrogate is not None:
        hessian += f" (boosting's `hessian_surrogate`: {surrogate!r})"
    rows = [("class", f"`lossengine.{cls.__name__}`"), ("registry key", f"`{cls.name}`"),
            ("functional", f"`lossengine.functional.{signature}`"),
            ("reference", f"{getattr(cls, 'reference', 'torch') or 'torch'}"),
            ("differentiable", ", ".join(f"`{a}`" for a in cls.differentiable)),
            ("reductions", ", ".join(f"`{r!r}`" for r in cls.reductions)),
            ("`gradient_hessian`", hessian),
            ("splits into chunks", f"`{cls.decomposes}`: {_DECOMPOSES.get(cls.decomposes, '')}")]
    return ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _arguments(cls: type) -> list[str]:
    rows = ["| argument | shape | values | gradient |", "|---|---|---|---|"]
    for name in cls.arguments:
        shape, values = _docstrings.argument_shape_and_values(cls, name)
        rows.append(f"| `{name}` | {_cell(shape)} | {_cell(values)} | "
                    f"{'yes' if name in cls.differentiable else 'no'} |")
    output = _docstrings.argument_shapes(cls).get("output", "")
    return rows + ["", f"The value: a scalar of the compute dtype; {output}.", "",
                   f"Dtypes: {_docstrings.DTYPES}."]


def _options(cls: type) -> list[str]:
    options = declared_options(cls)
    if not options:
        return ["None."]
    rows = ["| option | type | default | range | other values tested |", "|---|---|---|---|---|"]
    for o in options:
        examples = ", ".join(f"`{e!r}`" for e in o.examples)
        kind = _docstrings.option_type(o) + (", keyword-only" if o.keyword_only else "")
        rows.append(f"| `{o.name}` | {_cell(kind)} | `{o.default!r}` | {_cell(o.constraint) or 'any'} | {examples} |")
    return rows


def _deviations(cls: type) -> list[str]:
    deviations = getattr(cls, "deviations", {}) or {}
    if not deviations:
        return ["None declared: the validator and the parity tests hold it to its reference."]
    return [f"- `{key}`: {text}" for key, text in deviations.items()]


def example_script(cls: type) -> str:
    """The docstring's doctest as a script, each print's expected output in a comment after it
    (tests/test_docs.py runs the page's blocks and compares)."""
    lines, pending = [], None
    for line in _docstrings.example_lines(cls):
        if line.startswith(">>> "):
            if pending is not None:
                lines.append(pending)
            pending = line[4:]
        else:
            lines.append(f"{pending}  # {line}")
            pending = None
    if pending is not None:
        lines.append(pending)
    return "\n".join(lines)


def page(cls: type) -> str:
    """The Markdown page of one loss."""
    note = note_path(cls).read_text().strip() if note_path(cls).exists() else \
        "*No hand-written note yet (docs/loss_notes/).*"
    parts = [f"# {cls.__name__}", "", _summary(cls), "", *_facts(cls), "", note, "",
             "## Arguments", "", *_arguments(cls), "", "## Options", "", *_options(cls), "",
             "## Hessian", "", *_docstrings.hessian_lines(cls), "",
             "## Deviations from the reference", "", *_deviations(cls), "",
             "## Example", "", "```python", example_script(cls), "```", ""]
    return "\n".join(parts)


def index() -> str:
    rows = ["| loss | registry key | differentiable | Hessian |", "|---|---|---|---|"]
    for cls in builtin_losses():
        rows.append(f"| [{cls.__name__}]({cls.name}.md) | `{cls.name}` | {', '.join(cls.differentiable)} | "
                    f"{'yes' if _docstrings.has_hessian(cls) else 'no'} |")
    return "\n".join(["# Losses", "",
                      "One page per built-in loss, generated from its declaration and a short hand-written "
                      "note: formula, gradient, Hessian, shapes, options and torch's quirks.", "", *rows, ""])


def pages() -> dict[str, str]:
    """Every generated page, by its path under docs/."""
    out = {"losses/index.md": index()}
    out.update({page_path(cls): page(cls) for cls in builtin_losses()})
    return out


# -- MkDocs hooks ---------------------------------------------------------------------------------
def on_config(config):
    """The per-loss pages listed under the navigation's "Losses" section."""
    for entry in config["nav"] or ():
        if isinstance(entry, dict) and SECTION in entry:
            entry[SECTION] = ["losses/index.md"] + [{cls.__name__: page_path(cls)} for cls in builtin_losses()]
    return config


def on_files(files, config):
    from mkdocs.structure.files import File

    for path, content in pages().items():
        files.append(File.generated(config, path, content=content))
    return files


if __name__ == "__main__":
    out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "site-losses")
    for path, content in pages().items():
        (out_dir / path).parent.mkdir(parents=True, exist_ok=True)
        (out_dir / path).write_text(content)
