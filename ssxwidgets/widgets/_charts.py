"""The drill-down charts (bqplot): the selection's waterfall from the base
value to the output, and the counterfactual outputs.

bqplot stacks positive values up and negative values down from zero, so a
floating bar ``[low, high]`` is drawn as three stacked rows: an invisible
offset and the visible part, or (for a bar across zero) its negative and
positive halves. Labels reach the page through bqplot's text nodes, never as
markup.
"""

from __future__ import annotations

from typing import Any

import bqplot
import numpy as np
from numpy.typing import NDArray

from .. import colormaps
from ._drill import Counterfactual, Waterfall

__all__ = ["DrillCharts", "floating_rows"]

_LUT = colormaps.lut(colormaps.DEFAULT_DIVERGING)
#: warm for a step up, cool for a step down, grey for totals (blue_red ends)
UP = "#{:02x}{:02x}{:02x}".format(*_LUT[224])
DOWN = "#{:02x}{:02x}{:02x}".format(*_LUT[32])
TOTAL = "#7f7f7f"
_COLORS = {"up": UP, "down": DOWN, "total": TOTAL}

_FIGURE_LAYOUT = {"width": "380px", "height": "280px"}
_MARGIN = {"top": 40, "bottom": 64, "left": 60, "right": 12}


def floating_rows(
    low: NDArray[np.float64], high: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``(3, n)`` stacked rows that draw bars spanning ``[low, high]``.

    Row 0 is drawn transparent; rows 1 and 2 in the bar's colour. Bars above
    zero are ``[low, high - low, 0]``, below zero ``[high, low - high, 0]``,
    across zero ``[0, low, high]``.
    """
    low = np.asarray(low, np.float64)
    high = np.asarray(high, np.float64)
    above = low >= 0
    below = high <= 0
    across = ~above & ~below
    rows = np.zeros((3, low.size))
    rows[0] = np.where(above, low, np.where(below, high, 0.0))
    rows[1] = np.where(above, high - low, np.where(below, low - high, low))
    rows[2] = np.where(across, high, 0.0)
    return rows


class DrillCharts:
    """Two bqplot figures: ``waterfall`` and ``counterfactual``."""

    def __init__(self) -> None:
        x = bqplot.OrdinalScale()
        y = bqplot.LinearScale()
        self.steps = bqplot.Bars(
            x=[],
            y=[[], [], []],
            scales={"x": x, "y": y},
            type="stacked",
            color_mode="group",
            opacity_mode="element",
            opacities=[0.0, 1.0, 1.0],
            colors=[TOTAL],
            padding=0.2,
        )
        self.waterfall = bqplot.Figure(
            marks=[self.steps],
            axes=[
                bqplot.Axis(
                    scale=x,
                    label="selected superpixels",
                    tick_rotate=-45,
                    label_offset="48px",
                ),
                bqplot.Axis(
                    scale=y,
                    side="left",
                    tick_format=".3g",
                    grid_lines="dashed",
                ),
            ],
            title="Brush the image to drill down",
            fig_margin=dict(_MARGIN),
            layout=dict(_FIGURE_LAYOUT),
            animation_duration=0,
        )
        self.waterfall.add_class("ssx-waterfall")

        cx = bqplot.OrdinalScale()
        cy = bqplot.LinearScale()
        self.outcomes = bqplot.Bars(
            x=[],
            y=[],
            scales={"x": cx, "y": cy},
            colors=[TOTAL],
            color_mode="group",
            padding=0.3,
            label_display=True,
            label_display_format=".3g",
        )
        self.counterfactual = bqplot.Figure(
            marks=[self.outcomes],
            axes=[
                bqplot.Axis(scale=cx, tick_rotate=-20),
                bqplot.Axis(
                    scale=cy,
                    side="left",
                    tick_format=".3g",
                    grid_lines="dashed",
                ),
            ],
            title="Counterfactual",
            fig_margin=dict(_MARGIN),
            layout=dict(_FIGURE_LAYOUT),
            animation_duration=0,
        )
        self.counterfactual.add_class("ssx-counterfactual")

    @property
    def figures(self) -> list[Any]:
        """The figures, in display order."""
        return [self.waterfall, self.counterfactual]

    def show_waterfall(self, steps: Waterfall | None, title: str) -> None:
        """Draw ``steps`` (``None``: nothing selected) under ``title``."""
        with self.steps.hold_sync():
            if steps is None:
                self.steps.x = []
                self.steps.y = np.zeros((3, 0))
            else:
                self.steps.x = steps.labels
                self.steps.y = floating_rows(steps.low, steps.high)
                self.steps.colors = [_COLORS[k] for k in steps.kinds]
        self.waterfall.title = title

    def show_counterfactual(self, result: Counterfactual | None, title: str) -> None:
        """Draw the three outputs of ``result`` (``None``: nothing) under
        ``title``."""
        with self.outcomes.hold_sync():
            if result is None:
                self.outcomes.x = []
                self.outcomes.y = []
            else:
                values = [result.full, result.removed, result.kept]
                self.outcomes.x = ["image", "selection removed", "only selection"]
                self.outcomes.y = values
                self.outcomes.colors = [TOTAL, DOWN, UP]
        self.counterfactual.title = title

    def close(self) -> None:
        """Close the figures and everything in them."""
        for figure in self.figures:
            for mark in figure.marks:
                for scale in mark.scales.values():
                    scale.close()
                mark.close()
            for axis in figure.axes:
                axis.close()
            figure.scale_x.close()
            figure.scale_y.close()
            figure.close()
