"""MkDocs hook: the pages generated from the code and the sections taken from README.md.

* ``catalogue.md``: every layer and function ``layerhub.registry.list()`` finds, with its
  docstring and, where the plugin gives one (``LAYERHUB_EXAMPLES``), a runnable example.
* ``cli.md``: each ``layerhub`` subcommand's help, from ``build_parser()`` itself.
* ``<!-- readme: Title -->`` in a page is replaced by README.md's section of that title, one
  heading level up, so the README stays the one source of those sections. Links inside it are
  rewritten to the site's pages; one the site cannot resolve makes ``mkdocs build --strict`` fail.

Runs in the ``docs`` tox environment, where the core and every plugin are installed as wheels.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
_MARKER = re.compile(r"<!-- readme: (.+?) -->")
_FENCE = re.compile(r"^\s*(```|~~~)")


def _slug(title: str) -> str:
    # Python-Markdown's toc slugify, which names the site's anchors
    text = re.sub(r"[^\w\s-]", "", title.replace("`", "")).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _sections() -> dict[str, list[str]]:
    """README's ``## `` sections by title, each with its heading and subsections."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    fenced = False
    for line in README.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        if not fenced and line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), [])
        elif not fenced and line.startswith("# "):
            current = None
        if current is not None:
            current.append(line)
    return sections


def _page_of_anchor(config: Any) -> dict[str, str]:
    """README heading slug -> the site page that shows it (from the pages' markers)."""
    where: dict[str, str] = {}
    sections = _sections()
    for page in Path(config["docs_dir"]).glob("*.md"):
        for title in _MARKER.findall(page.read_text(encoding="utf-8")):
            fenced = False
            for line in sections.get(title, []):
                if _FENCE.match(line):
                    fenced = not fenced
                elif not fenced and line.startswith("#"):
                    where[_slug(line.lstrip("#").strip())] = page.name
    return where


def _rewrite_links(text: str, page: str, anchors: dict[str, str]) -> str:
    def link(match: re.Match[str]) -> str:
        target = match.group(1)
        if target.startswith("#"):
            home = anchors.get(target[1:])
            return f"]({target})" if home in (None, page) else f"]({home}{target})"
        if target.startswith("docs/"):
            return f"]({target.removeprefix('docs/')})"
        if target.startswith("plugins/"):
            # a plugin's README is its index page; the site shows its layers in the catalogue
            return f"](catalogue.md#{target.removeprefix('plugins/').strip('/')})"
        return match.group(0)

    return re.sub(r"\]\(([^)\s]+)\)", link, text)


def _readme_section(title: str, page: str, anchors: dict[str, str]) -> str:
    lines = _sections().get(title)
    if lines is None:
        raise ValueError(f"README.md has no section '## {title}' (asked for by {page})")
    out, fenced = [], False
    for line in lines:
        if _FENCE.match(line):
            fenced = not fenced
        # the section's "## Title" becomes the page's title
        out.append(line[1:] if not fenced and line.startswith("##") else line)
    return _rewrite_links("\n".join(out), page, anchors)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Fills each ``<!-- readme: Title -->`` marker with that README section."""
    if not _MARKER.search(markdown):
        return markdown
    anchors = _page_of_anchor(config)
    name = Path(page.file.src_uri).name
    return _MARKER.sub(lambda m: _readme_section(m.group(1), name, anchors), markdown)


def on_files(files: Any, config: Any) -> Any:
    """Adds the generated pages to the site."""
    from mkdocs.structure.files import File

    for name, content in (("catalogue.md", catalogue()), ("cli.md", cli_reference())):
        files.append(File.generated(config, name, content=content))
    return files


# -- the layer catalogue ---------------------------------------------------------------------------


def catalogue() -> str:
    """The catalogue page: the installed plugins' objects, from ``registry.list()``."""
    import layerhub

    records = layerhub.registry.list()
    lines = [
        "# Layer catalogue",
        "",
        "Generated from `layerhub.registry.list()` when this site was built, with every plugin "
        "of this repository installed. Each entry shows the object's docstring and, where the "
        "plugin gives one, an example built from its `LAYERHUB_EXAMPLES` (the arguments and "
        "input shape its conformance test uses).",
        "",
        "| object | registered name | distribution |",
        "| --- | --- | --- |",
    ]
    lines += [
        f"| [`{r.name}`](#{_slug(r.name)}) | `{r.registered_name}` | "
        f"[`{r.distribution}`](#{r.distribution}) |"
        for r in records
    ]
    by_distribution: dict[str, list[Any]] = {}
    for record in records:
        by_distribution.setdefault(str(record.distribution), []).append(record)
    for distribution, group in sorted(by_distribution.items()):
        plugin = importlib.import_module(group[0].plugin)
        lines += ["", f"## {distribution}", "", f"`pip install {distribution}`", ""]
        if doc := inspect.getdoc(plugin):
            lines += [doc.splitlines()[0], ""]
        examples: dict[str, Any] = getattr(plugin, "LAYERHUB_EXAMPLES", {})
        for record in group:
            obj = layerhub.registry.get(record.registered_name)
            lines += [f"### {record.name}", "", f"`{record.registered_name}`", ""]
            lines += [_docstring(obj), ""]
            if record.name in examples:
                lines += _example(record, examples[record.name])
    return "\n".join(lines) + "\n"


def _docstring(obj: Any) -> str:
    doc = inspect.getdoc(obj) or "(no docstring)"
    # shown as written: docstrings hold ``literals`` and indented blocks, not Markdown
    return "```text\n" + doc + "\n```"


def _example(record: Any, example: Any) -> list[str]:
    # one (init_kwargs, input_shape) pair, or a list of them: the first is the example
    kwargs, shape = example[0] if isinstance(example, list) else example
    arguments = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    shapes = shape if isinstance(shape, list) else [shape]
    inputs = ", ".join(f"keras.random.normal({tuple(s)!r})" for s in shapes)
    call = f"[{inputs}]" if isinstance(shape, list) else inputs
    return [
        "```python",
        "import keras",
        f"from {record.plugin} import {record.name}",
        "",
        f"layer = {record.name}({arguments})",
        f"outputs = layer({call})",
        "```",
        "",
    ]


# -- the CLI reference -----------------------------------------------------------------------------


def cli_reference() -> str:
    """The CLI page: ``layerhub --help`` and each subcommand's help, from the parser."""
    from layerhub._private.cli.command import build_parser

    parser = build_parser()
    parser.prog = "layerhub"
    lines = [
        "# Command line",
        "",
        "Generated from the parser of the `layerhub` command (`build_parser()` in "
        "`layerhub._private.cli.command`) when this site was built: each block is that command's "
        "`--help`.",
        "",
        "```text",
        _help(parser),
        "```",
    ]
    for action in parser._actions:  # argparse keeps its subparsers here, and nowhere public
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                lines += ["", f"## layerhub {name}", "", "```text", _help(sub), "```"]
    return "\n".join(lines) + "\n"


def _help(parser: argparse.ArgumentParser) -> str:
    import os

    # a fixed width, so the page does not depend on the terminal the site was built in
    os.environ["COLUMNS"] = "100"
    return parser.format_help().rstrip()
