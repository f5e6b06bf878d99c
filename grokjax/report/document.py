"""A report as blocks (headings, paragraphs, figures with captions, tables), rendered twice.

To Markdown that links `figures/*.png` next to it, and to one HTML file with every
figure embedded as base64 PNG (it can be mailed or opened offline). Every table is
also written as `tables/<name>.csv`.

>>> r = Report("demo")
>>> r.text("Test accuracy first reaches **0.99** at step `1400`.")
>>> r.table("grok", [{"op": "sub", "step": 1400.0}], caption="grokking steps")
>>> "| sub | 1400 |" in r.markdown()
True
"""

from __future__ import annotations

import base64
import dataclasses
import html
import math
import os
import pathlib
import re
from typing import Sequence

from grokjax import runio


@dataclasses.dataclass
class Heading:
  text: str
  level: int = 2


@dataclasses.dataclass
class Text:
  text: str  # paragraphs separated by blank lines; '- ' lines are list items


@dataclasses.dataclass
class Figure:
  png: pathlib.Path  # the figure's PNG (a PDF with the same stem sits next to it)
  caption: str


@dataclasses.dataclass
class Table:
  name: str
  rows: list[dict]
  caption: str = ""
  columns: Sequence[str] | None = None  # shown columns (the CSV keeps them all)
  shown: list[dict] | None = None  # shown rows, if not all (the CSV keeps them all)

  @property
  def display(self) -> list[dict]:
    return self.rows if self.shown is None else self.shown


def fmt(v) -> str:
  """A table cell: integers as integers, floats to 4 significant digits, NaN as n/a."""
  if isinstance(v, bool):
    return str(v)
  if isinstance(v, float) or hasattr(v, "dtype") and getattr(v, "dtype").kind == "f":
    v = float(v)
    if not math.isfinite(v):
      return "n/a"
    if v == int(v) and abs(v) < 1e9:
      return str(int(v))
    return f"{v:.4g}"
  return str(v)


def _inline_md_to_html(text: str) -> str:
  out = html.escape(text, quote=False)
  out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
  return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)


class Report:
  """Blocks of a report, rendered to Markdown and to self-contained HTML."""

  def __init__(self, title: str):
    self.title = title
    self.blocks: list = []

  def heading(self, text: str, level: int = 2) -> None:
    self.blocks.append(Heading(text, level))

  def text(self, text: str) -> None:
    self.blocks.append(Text(text))

  def figure(self, png, caption: str) -> None:
    self.blocks.append(Figure(pathlib.Path(png), caption))

  def table(self, name: str, rows: list[dict], caption: str = "",
            columns: Sequence[str] | None = None, shown: list[dict] | None = None) -> None:
    self.blocks.append(Table(name, list(rows), caption, columns, shown))

  # ------------------------------------------------------------ markdown

  def markdown(self, base: pathlib.Path | None = None) -> str:
    """The report as Markdown; figure links are relative to `base` (the report folder)."""
    out = [f"# {self.title}", ""]
    n_fig = 0
    for b in self.blocks:
      if isinstance(b, Heading):
        out += ["#" * b.level + " " + b.text, ""]
      elif isinstance(b, Text):
        out += [b.text.strip(), ""]
      elif isinstance(b, Figure):
        n_fig += 1
        link = os.path.relpath(b.png, base) if base is not None else str(b.png)
        out += [f"![Figure {n_fig}]({link})", "", f"*Figure {n_fig}.* {b.caption}", ""]
      elif isinstance(b, Table):
        out += _md_table(b) + [""]
    return "\n".join(out)

  # ------------------------------------------------------------ html

  def html(self) -> str:
    """The report as one HTML page with every figure embedded (base64 PNG)."""
    body, n_fig = [], 0
    for b in self.blocks:
      if isinstance(b, Heading):
        body.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
      elif isinstance(b, Text):
        body.append(_html_text(b.text))
      elif isinstance(b, Figure):
        n_fig += 1
        data = base64.b64encode(b.png.read_bytes()).decode("ascii")
        body.append(f'<figure><img src="data:image/png;base64,{data}" alt="Figure {n_fig}">'
                    f"<figcaption><b>Figure {n_fig}.</b> {_inline_md_to_html(b.caption)}"
                    "</figcaption></figure>")
      elif isinstance(b, Table):
        body.append(_html_table(b))
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(self.title)}"
            f"</title><style>{CSS}</style></head><body><h1>{html.escape(self.title)}</h1>\n"
            + "\n".join(body) + "\n</body></html>\n")

  # ------------------------------------------------------------ files

  def write(self, report_dir) -> dict[str, pathlib.Path]:
    """report.md, report.html and tables/<name>.csv in report_dir; returns their paths."""
    d = pathlib.Path(report_dir)
    (d / "tables").mkdir(parents=True, exist_ok=True)
    paths = {"md": d / "report.md", "html": d / "report.html"}
    for b in self.blocks:
      if isinstance(b, Table) and b.rows:
        paths[b.name] = d / "tables" / f"{b.name}.csv"
        runio.write_csv(paths[b.name], b.rows)
    for key, text in (("md", self.markdown(base=d)), ("html", self.html())):
      with runio.atomic_write(paths[key]) as f:
        f.write(text)
    return paths


CSS = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.45;"
       "color:#222}figure{margin:1.5em 0}img{max-width:100%}figcaption{font-size:.9em;"
       "color:#444}table{border-collapse:collapse;font-size:.8em;margin:1em 0}"
       "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#f2f2f2}"
       "caption{caption-side:top;text-align:left;font-size:.9em;color:#444;padding:4px 0}"
       "code{background:#f4f4f4;padding:0 3px}")


def _columns(t: Table) -> list[str]:
  if t.columns is not None:
    return list(t.columns)
  return list(dict.fromkeys(k for r in t.rows for k in r)) if t.rows else []


def _md_table(t: Table) -> list[str]:
  lines = [f"**Table `{t.name}`.** {t.caption}".strip(), ""]
  if not t.display:
    return lines + ["(no rows)"]
  cols = _columns(t)
  lines.append("| " + " | ".join(cols) + " |")
  lines.append("|" + "|".join("---" for _ in cols) + "|")
  cell = lambda v: fmt(v).replace("|", "\\|")  # a bare | would end the cell
  lines += ["| " + " | ".join(cell(r.get(c, "")) for c in cols) + " |" for r in t.display]
  return lines + ["", f"(CSV: `tables/{t.name}.csv`)"]


def _html_table(t: Table) -> str:
  cap = f"<caption><b>Table {html.escape(t.name)}.</b> {_inline_md_to_html(t.caption)}</caption>"
  if not t.display:
    return f"<table>{cap}<tr><td>(no rows)</td></tr></table>"
  cols = _columns(t)
  head = "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>"
  body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(r.get(c, '')))}</td>" for c in cols)
                 + "</tr>" for r in t.display)
  return f"<table>{cap}{head}{body}</table>"


def _html_text(text: str) -> str:
  out = []
  for para in re.split(r"\n\s*\n", text.strip()):
    lines = para.splitlines()
    if all(l.lstrip().startswith("- ") for l in lines):
      items = "".join(f"<li>{_inline_md_to_html(l.lstrip()[2:])}</li>" for l in lines)
      out.append(f"<ul>{items}</ul>")
    else:
      out.append(f"<p>{_inline_md_to_html(' '.join(lines))}</p>")
  return "\n".join(out)

