"""A griffe extension for the API reference: bpjax's docstrings are written for ``help()`` and Sphinx
(reST roles such as :class:`Model`, simple tables, ``::`` before a code block); mkdocstrings renders
Markdown. Before rendering, each docstring's roles become code spans, its simple tables become lists
and a trailing ``::`` a colon (the indented block after it is code in Markdown too). The source is
unchanged; mkdocs.yml loads this file (``extensions``)."""

import re

import griffe

ROLE = re.compile(r":(?:class|func|mod|data|meth|attr|obj|exc|const|ref):`(~?)([^`]+)`")
BORDER = re.compile(r"^ *=+( +=+)+ *$")


def _table_to_list(rows: list[str], starts: list[int]) -> list[str]:
    """A simple table's rows as a list: one item per row, its first cell in bold, continuation lines
    (a blank first cell) joined to the row above."""
    items: list[list[str]] = []
    for row in rows:
        cells = [row[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        if cells[0] or not items:
            items.append(cells)
        else:
            items[-1] = [f"{old} {new}".strip() for old, new in zip(items[-1], cells, strict=True)]
    return [f"- **{cells[0]}**: " + " ".join(c for c in cells[1:] if c) for cells in items]


def to_markdown(text: str) -> str:
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        line = lines[i]
        if BORDER.match(line):
            end = next((j for j in range(i + 1, len(lines)) if BORDER.match(lines[j])), None)
            if end is not None:
                starts = [m.start() for m in re.finditer(r"=+", line)]
                out += ["", *_table_to_list(lines[i + 1 : end], starts), ""]
                i = end + 1
                continue
        out.append(re.sub(r"(\S)::$", r"\1:", line))
        i += 1
    # :class:`~a.b.C` shows C, as Sphinx does; :class:`a.b.C` the whole path
    return ROLE.sub(lambda m: f"`{m[2].rsplit('.', 1)[-1] if m[1] else m[2]}`", "\n".join(out))


class RstDocstrings(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
