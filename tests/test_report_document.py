"""The report's document model: Markdown and self-contained HTML from the same blocks."""

import base64

import numpy as np

from grokjax import runio
from grokjax.figures import style
from grokjax.report import document


def test_markdown_and_html_rendering(tmp_path):
  fig, ax = style.plt.subplots()
  ax.plot([0, 1])
  style.save(fig, tmp_path / "f")
  r = document.Report("t")
  r.heading("Section")
  r.text("A **bold** `code` line.\n\n- one\n- two")
  r.figure(tmp_path / "f.png", "what | settings")
  r.table("tab", [{"name": "a|b", "x": 1.0, "y": float("nan"), "z": 0.123456}], caption="c")
  paths = r.write(tmp_path / "rep")
  md = paths["md"].read_text()
  assert "| a\\|b | 1 | n/a | 0.1235 |" in md
  assert "![Figure 1](../f.png)" in md and "*Figure 1.* what | settings" in md
  html = paths["html"].read_text()
  png = base64.b64encode((tmp_path / "f.png").read_bytes()).decode()
  assert f"data:image/png;base64,{png}" in html
  assert "<b>bold</b>" in html and "<li>two</li>" in html and "<code>code</code>" in html
  t = runio.read_csv(paths["tab"])
  assert t["name"][0] == "a|b" and t["x"][0] == 1.0 and np.isnan(t["y"][0])


def test_fmt():
  assert document.fmt(3.0) == "3" and document.fmt(np.float64(2.5e-5)) == "2.5e-05"
  assert document.fmt(np.int64(7)) == "7" and document.fmt(float("inf")) == "n/a"
  assert document.fmt("x") == "x" and document.fmt(True) == "True"
