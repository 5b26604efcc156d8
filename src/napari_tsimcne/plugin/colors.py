"""Colours of a map's points, the key to read them, and numbers written for people."""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "MAP_COLOR",
    "PLACED_COLOR",
    "Coloring",
    "contrasting_color",
    "feature_colors",
    "format_number",
    "legend_columns",
    "legend_html",
    "map_colors",
]

#: Colours of the points of a map, and of images placed on an existing map.
MAP_COLOR = (0.36, 0.75, 1.0, 1.0)
PLACED_COLOR = (1.0, 0.55, 0.1, 1.0)
MISSING_COLOR = (0.5, 0.5, 0.5, 1.0)
#: Numeric features with at most this many distinct values are coloured as categories.
MAX_CATEGORIES = 12


@dataclass
class Coloring:
    """Colours of a map's points and the key to read them.

    Attributes
    ----------
    colors : array (N, 4)
        RGBA in ``[0, 1]``.
    description : str
        E.g. ``"4 categories"`` or ``"viridis from 0.1 (dark) to 2.3 (yellow)"``.
    legend : list of (str, tuple)
        Label and RGBA colour of each category, or of the two ends of a scale.
    continuous : bool
        The legend holds the two ends of a colour scale rather than categories.
    """

    colors: np.ndarray
    description: str
    legend: list
    continuous: bool = False


def feature_colors(values) -> Coloring:
    """Colours for a feature with one value per point.

    Numbers with more than :data:`MAX_CATEGORIES` distinct values use
    viridis between their 1st and 99th percentile; anything else is treated
    as categories, coloured with tab10 or tab20.  Missing values are grey.
    """
    from matplotlib import colormaps

    values = pd.Series(values).reset_index(drop=True)
    missing = values.isna().to_numpy()
    colors = np.tile(np.asarray(MISSING_COLOR), (len(values), 1))
    present = values[~missing]
    if len(present) == 0:
        return Coloring(colors, "no values", [])
    if pd.api.types.is_numeric_dtype(values) and present.nunique() > MAX_CATEGORIES:
        low, high = np.percentile(present.to_numpy(dtype=np.float64), [1, 99])
        scaled = (present.to_numpy(dtype=np.float64) - low) / max(high - low, 1e-12)
        viridis = colormaps["viridis"]
        colors[~missing] = viridis(np.clip(scaled, 0, 1))
        low_text, high_text = format_number(low), format_number(high)
        return Coloring(colors, f"viridis from {low_text} (dark) to {high_text} (yellow)",
                        [(low_text, viridis(0.0)), (high_text, viridis(1.0))], continuous=True)
    categories = sorted(present.unique(), key=str)
    cmap = colormaps["tab10" if len(categories) <= 10 else "tab20"]
    lookup = {c: cmap(i % cmap.N) for i, c in enumerate(categories)}
    colors[~missing] = np.array([lookup[v] for v in present])
    return Coloring(colors, f"{len(categories)} categories",
                    [(str(c), lookup[c]) for c in categories])


def map_colors(table: pd.DataFrame, color_by: str | None, plain_color=MAP_COLOR) -> Coloring:
    """Colours of a map's points: by the column ``color_by`` of its ``table``, else plain.

    A ``color_by`` that is not (or no longer) a column gives the plain colour.
    """
    if color_by is None or color_by not in table.columns:
        return Coloring(np.tile(np.asarray(plain_color), (len(table), 1)), "plain", [])
    return feature_colors(table[color_by])


def format_number(value, digits: int = 3) -> str:
    """A number for people: ``digits`` significant digits, thousands separated, no exponent.

    E.g. ``1999.7`` gives ``"2,000"``, ``778.2`` gives ``"778"`` and
    ``0.012345`` gives ``"0.0123"``.
    """
    value = float(value)
    if value == 0 or not np.isfinite(value):
        return f"{value:g}"
    decimals = digits - 1 - int(np.floor(np.log10(abs(value))))
    text = f"{round(value, decimals):,.{max(decimals, 0)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def legend_html(coloring: Coloring, columns: int = 1, limit: int = 20) -> str:
    """A colour key as rich text: a coloured square before each label.

    A scale reads ``low → high`` on one line; categories fill a table of
    ``columns`` columns, row by row, each label kept on one line (long names
    such as ``outlier: debris`` are not broken), at most ``limit`` of them.
    """
    def entry(label, color):
        r, g, b = (int(round(255 * c)) for c in color[:3])
        text = html.escape(str(label)).replace(" ", "&nbsp;")
        return f'<span style="color: rgb({r}, {g}, {b})">&#9632;</span>&nbsp;{text}'

    if not coloring.legend:
        return ""
    if coloring.continuous:
        return " &rarr; ".join(entry(label, color) for label, color in coloring.legend)
    entries = [entry(label, color) for label, color in coloring.legend[:limit]]
    if len(coloring.legend) > limit:
        entries.append(f"… {len(coloring.legend) - limit} more")
    columns = max(1, int(columns))
    rows = ["".join(f'<td style="padding-right: 12px">{cell}</td>'
                    for cell in entries[start : start + columns])
            for start in range(0, len(entries), columns)]
    return '<table cellspacing="0">' + "".join(f"<tr>{row}</tr>" for row in rows) + "</table>"


def legend_columns(label_widths, width: int, spacing: int) -> int:
    """Columns of a colour key that fit in ``width`` pixels, at least one.

    ``label_widths`` are the widths in pixels of the key's entries (square
    and label), ``spacing`` the pixels between columns.
    """
    widest = max(label_widths, default=0)
    return max(1, int(width) // (widest + spacing))


def contrasting_color(background) -> tuple[float, float, float, float]:
    """White on a dark ``background`` (RGB in ``[0, 1]``), black on a light one."""
    r, g, b = (float(c) for c in background[:3])
    return (1.0, 1.0, 1.0, 1.0) if 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.5 else (
        0.0, 0.0, 0.0, 1.0)
