"""Helpers of the figure tests: PNG files, and figures caught before they are saved."""

from __future__ import annotations

import pathlib

import pytest


def is_png(path: pathlib.Path) -> bool:
  return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def drawn(paths, min_bytes: int = 5_000) -> bool:
  """[png, pdf] as `style.save` returns them: both written, the PNG not blank."""
  png, pdf = paths
  return is_png(png) and png.stat().st_size > min_bytes and pdf.read_bytes()[:5] == b"%PDF-"


@pytest.fixture
def caught(monkeypatch):
  """The figures passed to `style.save`, kept open for inspection (list of figures)."""
  from grokjax.figures import style

  figs, save = [], style.save

  def keep(fig, stem):
    figs.append(fig)
    fig.canvas.draw()
    stem = pathlib.Path(stem)
    return [stem.with_suffix(".png"), stem.with_suffix(".pdf")]

  monkeypatch.setattr(style, "save", keep)
  yield figs
  monkeypatch.setattr(style, "save", save)
  for fig in figs:
    style.plt.close(fig)
