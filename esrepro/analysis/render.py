"""Rendering of every aggregation output: tables as CSV, Markdown and LaTeX, figures as PNG, PDF or
any other format matplotlib writes; the format of each output file follows its suffix.

Every output is rendered in memory first and then written atomically (:mod:`esrepro.atomic`), so a
failed command leaves no partial file. Figures are drawn on matplotlib's Agg canvas through the
object-oriented API (no pyplot, so no global backend switch and no figures left open), with the
seaborn theme applied inside an ``rc_context`` so the caller's rcParams are untouched.
"""

import contextlib
import io
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import matplotlib as mpl
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from esrepro.atomic import atomic_output, write_text
from esrepro.errors import InputError

TABLE_SUFFIXES = (".csv", ".md", ".tex")
"""Table formats: the frame as CSV, caption + Markdown table, booktabs LaTeX table."""

FIGURE_SUFFIXES = tuple(f".{s}" for s in sorted(FigureCanvasAgg.get_supported_filetypes()))
"""Figure formats: those matplotlib's Agg canvas writes (png, pdf, svg, ...)."""

DPI = 150
"""Resolution of raster figures."""


class OutputPathError(InputError):
    """An output path whose suffix names no format of its kind, or a path given twice."""


def check_outputs(*, tables: Iterable[Path | str] = (), figures: Iterable[Path | str] = ()) -> None:
    """Check the output paths of one command before any work starts.

    Raises
    ------
    OutputPathError
        If a table path's suffix is not one of :data:`TABLE_SUFFIXES`, a figure path's not one of
        :data:`FIGURE_SUFFIXES`, or a path is given twice; the message names the path.
    """
    seen = set()
    for kind, paths, suffixes in (("table", tables, TABLE_SUFFIXES), ("figure", figures, FIGURE_SUFFIXES)):
        for path in map(Path, paths):
            if path.suffix.lower() not in suffixes:
                raise OutputPathError(f"output {path}: unknown {kind} format '{path.suffix}' "
                                      f"(known: {', '.join(suffixes)})")
            if path.resolve() in seen:
                raise OutputPathError(f"output {path} is given twice")
            seen.add(path.resolve())


# ---------------------------------------------------------------- numbers as text

def fixed_text(value: float) -> str:
    """A score or ratio to 2 decimals; NaN -> ``"n/a"``."""
    return "n/a" if value is None or math.isnan(value) else f"{value:.2f}"


def sci_text(value: float | str) -> str:
    """Timesteps as in the paper's Table 3: ``905000`` -> ``"9.05e5"``; NaN -> ``"n/a"``; a string
    is returned as it is."""
    if isinstance(value, str):
        return value
    if value is None or math.isnan(value):
        return "n/a"
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


# ---------------------------------------------------------------- tables

def markdown_table(caption: str, shown: pd.DataFrame) -> str:
    """A caption line, a blank line, then the (all-string) table as Markdown: the first column
    left-aligned, the others right-aligned."""
    markdown = shown.to_markdown(index=False, disable_numparse=True,
                                 colalign=["left"] + ["right"] * (shown.shape[1] - 1))
    return caption + "\n\n" + markdown + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}"}


def _latex_escape(text: str) -> str:
    """Escape LaTeX special characters, including ``<`` and ``>`` (which pandas leaves as they
    are and the default OT1 font encoding prints as other glyphs)."""
    return "".join(_LATEX_SPECIAL.get(char, char) for char in str(text))


def latex_table(caption: str, label: str, shown: pd.DataFrame) -> str:
    """A booktabs ``table`` environment (pandas Styler; needs jinja2) with caption and label."""
    escaped = shown.map(_latex_escape)
    escaped.columns = [_latex_escape(c) for c in shown.columns]
    return escaped.style.hide(axis="index").to_latex(
        caption=_latex_escape(caption), label=label, hrules=True, position_float="centering",
        column_format="l" + "r" * (shown.shape[1] - 1))


def write_table(paths: Iterable[Path | str], frame: pd.DataFrame, shown: pd.DataFrame, caption: str,
                label: str) -> None:
    """Write one table to every path, in the format its suffix names (:func:`check_outputs` first).

    Parameters
    ----------
    paths : iterable of Path or str
        ``.csv``: `frame` (no index); ``.md``: :func:`markdown_table` of `shown`; ``.tex``:
        :func:`latex_table` of `shown`. All are rendered before the first is written; each is
        written atomically, parent directories created.
    frame : DataFrame
        The table's numbers.
    shown : DataFrame
        The same table as strings, as a reader sees it.
    caption, label : str
        The caption line (Markdown, LaTeX) and the LaTeX label, e.g. ``"tab:table1"``.
    """
    render = {".csv": lambda: frame.to_csv(index=False), ".md": lambda: markdown_table(caption, shown),
              ".tex": lambda: latex_table(caption, label, shown)}
    texts = {Path(path): render[Path(path).suffix.lower()]() for path in paths}
    for path, text in texts.items():
        write_text(path, text)


# ---------------------------------------------------------------- figures

@contextlib.contextmanager
def themed_figure(width: float, height: float) -> Iterator[Figure]:
    """A constrained-layout Figure of `width` x `height` inches on an Agg canvas, with the seaborn
    ``whitegrid`` theme in force until the block ends (draw and save it inside the block)."""
    with mpl.rc_context():
        sns.set_theme(style="whitegrid")
        fig = Figure(figsize=(width, height), layout="constrained")
        FigureCanvasAgg(fig)
        yield fig


def save_figure(fig: Figure, paths: Iterable[Path | str]) -> None:
    """Write `fig` to every path, in the format its suffix names (raster formats at :data:`DPI`).

    All formats are rendered before the first file is written; each is written atomically, parent
    directories created.
    """
    images = {}
    for path in map(Path, paths):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=path.suffix[1:].lower(), dpi=DPI)
        images[path] = buffer.getvalue()
    for path, image in images.items():
        with atomic_output(path) as tmp:
            tmp.write_bytes(image)
