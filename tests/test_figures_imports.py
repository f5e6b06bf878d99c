"""Drawing lives in grokjax.figures alone, and neither figures nor the report reach a lens."""

import ast
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]
LENSES = ("grokjax.measures", "grokjax.causal", "grokjax.slt", "grokjax.surrogate")


def imported(path: pathlib.Path) -> set[str]:
  """Every module a source file imports, at the top or inside a function."""
  out = set()
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      out |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.level == 0:
      out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
  return out


def sources(*folders: str) -> list[pathlib.Path]:
  return sorted(p for f in folders for p in (REPO / f).rglob("*.py"))


def test_only_the_figures_package_imports_matplotlib():
  files = sources("grokjax", "experiments", "tests")
  assert len(files) > 50
  figures = REPO / "grokjax" / "figures"
  outside = {str(p.relative_to(REPO)) for p in files if figures not in p.parents
             and any(m.split(".")[0] == "matplotlib" for m in imported(p))}
  assert not outside, f"matplotlib imported outside grokjax/figures: {sorted(outside)}"
  assert all(any(m.startswith("matplotlib") or m.startswith("grokjax.figures")
                 for m in imported(p)) for p in sources("grokjax/figures") if p.stem != "__init__")


def test_figures_and_report_import_no_lens():
  for p in sources("grokjax/figures", "grokjax/report"):
    lens = sorted(m for m in imported(p) if m.startswith(LENSES))
    assert not lens, f"{p.relative_to(REPO)} imports {lens}"


def test_the_check_sees_imports_inside_functions(tmp_path):
  src = tmp_path / "f.py"
  src.write_text("def f():\n  import matplotlib.pyplot as plt\n  from grokjax.slt import llc\n")
  assert {"matplotlib.pyplot", "grokjax.slt", "grokjax.slt.llc"} <= imported(src)
