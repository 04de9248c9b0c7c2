"""Self-contained HTML: reports of explanations, and live widgets exported.

Both kinds of file render offline from one file: images are inline ``data:``
PNGs, styles and scripts are inline, nothing is fetched. Every string a user
or a model names (titles, labels, class and feature names, parameters) is
HTML-escaped before it reaches the page.

Usage::

    ssx.report([exp_ig, exp_lime], "report.html", inputs=images)
    ssx.report(widget, "report.html", metrics={"deletion": auc})
    write_widget_html(widget, "widget.html")    # the live view, no kernel
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import html
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import colormaps
from ._log import logger
from ._version import __version__
from .explanation import Explanation
from .widgets._frames import display_image, value_range_for

__all__ = [
    "bar_chart_svg",
    "display_pixels",
    "report",
    "report_html",
    "value_range",
    "widget_html",
    "write_widget_html",
]

#: images of one explanation shown in a report; the rest are counted
MAX_INPUTS = 16
#: bars of one table row; the remaining features are summed into one bar
MAX_FEATURES = 20
#: the longest side of a picture on the page, in CSS pixels
PICTURE_PX = 192
#: heatmap opacity over the image, as in the widget
OPACITY = 0.6

# What a faithfulness number means, shown beside it.
METRIC_HINTS = {
    "deletion": "AUC as the most important features are removed; lower is better",
    "insertion": "AUC as the most important features are restored; higher is better",
    "pointing_game": "fraction of inputs whose top pixel is on the object",
}

STATIC = Path(__file__).resolve().parent / "static"


# ---------------------------------------------------------------------------
# Escaping and small formatters


def _e(text: Any) -> str:
    """``text`` as HTML text or attribute value: ``& < > " '`` escaped."""
    return html.escape(str(text), quote=True)


def _number(value: float) -> str:
    """A short, readable number: 4 significant digits."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if value == 0.0:
        return "0"
    if 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    return f"{value:.3e}"


def _describe(value: Any) -> str:
    """A one-line description of a parameter or an extra (not yet escaped)."""
    if value is None:
        return "None"
    if isinstance(value, bool | str):
        return str(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return _number(float(value))
    if isinstance(value, np.ndarray | list | tuple) and _is_numeric(value):
        array = np.asarray(value, dtype=np.float64)
        if array.size <= 6:
            return "[" + ", ".join(_number(v) for v in array.ravel()) + "]"
        finite = array[np.isfinite(array)]
        if finite.size == 0:
            return f"array {array.shape}, no finite values"
        return (
            f"array {array.shape}, min {_number(finite.min())}, "
            f"mean {_number(finite.mean())}, max {_number(finite.max())}"
        )
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_describe(v)}" for k, v in value.items())
    if callable(value):
        return f"callable {getattr(value, '__name__', type(value).__name__)}"
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _is_numeric(value: Any) -> bool:
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        return False
    return array.dtype.kind in "biuf"


# ---------------------------------------------------------------------------
# Pictures


def _png(pixels: NDArray[np.uint8]) -> str:
    """A ``data:`` URI of the PNG of ``(H, W, 3 | 4)`` uint8 pixels."""
    from PIL import Image

    mode = "RGBA" if pixels.shape[-1] == 4 else "RGB"
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels), mode).save(
        buffer, format="PNG", optimize=True
    )
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def display_pixels(image: ArrayLike) -> NDArray[np.uint8]:
    """``(H, W, 3 | 4)`` uint8 pixels of one image, exactly as the widget
    shows it (see `ssxwidgets.widgets._frames.display_image`)."""
    return display_image(image)[0]


def value_range(values: ArrayLike) -> tuple[float, float]:
    """The colour range of a map, by the widget's rule (see
    `ssxwidgets.widgets._frames.value_range_for`)."""
    return value_range_for(values)


def _overlay(
    pixels: NDArray[np.uint8], rgba: NDArray[np.uint8], opacity: float
) -> NDArray[np.uint8]:
    """``rgba`` blended over the RGB of ``pixels`` at ``opacity``.

    The heatmap is stretched (nearest neighbour) to the image's size when the
    two differ, as the widget stretches its canvases over one stage.
    """
    height, width = pixels.shape[:2]
    rows = np.arange(height) * rgba.shape[0] // height
    cols = np.arange(width) * rgba.shape[1] // width
    layer = rgba[rows][:, cols].astype(np.float64)
    alpha = layer[..., 3:] / 255.0 * opacity
    out = pixels[..., :3] * (1.0 - alpha) + layer[..., :3] * alpha
    return np.floor(out + 0.5).astype(np.uint8)


def _zoomed_size(height: int, width: int) -> tuple[int, int]:
    """Display size: an integer zoom up to `PICTURE_PX`, or a shrink."""
    side = max(height, width, 1)
    zoom = PICTURE_PX // side if side <= PICTURE_PX else PICTURE_PX / side
    return max(1, round(height * zoom)), max(1, round(width * zoom))


def _img(uri: str, height: int, width: int, alt: str) -> str:
    h, w = _zoomed_size(height, width)
    return f'<img class="pic" src="{_e(uri)}" width="{w}" height="{h}" alt="{_e(alt)}">'


def _legend(name: str, lo: float, hi: float, label: str) -> str:
    """A colour bar of map ``name`` with the values at its ends."""
    ramp = np.ascontiguousarray(np.broadcast_to(colormaps.lut(name)[None], (1, 256, 3)))
    return (
        '<div class="legend">'
        f'<span class="lo">{_e(_number(lo))}</span>'
        f'<img class="bar" src="{_png(ramp)}" alt="{_e(name)} colour bar">'
        f'<span class="hi">{_e(_number(hi))}</span>'
        f'<span class="legend-label">{_e(label)} ({_e(name)})</span>'
        "</div>"
    )


# ---------------------------------------------------------------------------
# Bar charts of table attributions


def bar_chart_svg(
    values: ArrayLike,
    feature_names: Sequence[str],
    row: ArrayLike | None = None,
    *,
    max_features: int = MAX_FEATURES,
) -> str:
    """An inline SVG bar chart of one row's feature attributions.

    Parameters
    ----------
    values
        ``(F,)`` attributions.
    feature_names
        ``F`` names; shown escaped.
    row
        ``(F,)`` the input's feature values, shown beside the names.
    max_features
        Bars drawn, largest magnitude first; the rest become one bar.

    Returns
    -------
    str
        ``<svg>`` markup, positive bars warm and negative bars cool (the ends
        of the ``blue_red`` map).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if len(feature_names) != v.size:
        raise ValueError(
            f"expected {v.size} feature names for {v.size} attributions; got "
            f"{len(feature_names)}"
        )
    x = None if row is None else np.asarray(row, dtype=np.float64).ravel()
    order = np.argsort(-np.abs(np.nan_to_num(v)), kind="stable")
    shown = order[:max_features]
    labels = [
        str(feature_names[i]) + ("" if x is None else f" = {_number(x[i])}")
        for i in shown
    ]
    bars = [float(v[i]) for i in shown]
    if v.size > len(shown):
        rest = order[max_features:]
        labels.append(f"{len(rest)} other features")
        bars.append(float(np.nansum(v[rest])))

    lut = colormaps.lut("blue_red")
    warm = "#{:02x}{:02x}{:02x}".format(*lut[230])
    cool = "#{:02x}{:02x}{:02x}".format(*lut[25])
    row_h, label_w, chart_w, value_w = 20, 240, 320, 80
    width = label_w + chart_w + value_w
    height = row_h * len(bars) + 8
    magnitude = max((abs(b) for b in bars if math.isfinite(b)), default=0.0) or 1.0
    signed = any(b < 0 for b in bars)
    zero = label_w + (chart_w / 2 if signed else 0)
    scale = (chart_w / 2 if signed else chart_w) / magnitude

    parts = [
        f'<svg class="bars" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="feature attributions">',
        f'<line x1="{zero:.1f}" y1="0" x2="{zero:.1f}" y2="{height}" '
        'stroke="#888" stroke-width="1"/>',
    ]
    for k, (label, bar) in enumerate(zip(labels, bars, strict=True)):
        y = 4 + k * row_h
        length = abs(bar) * scale if math.isfinite(bar) else 0.0
        left = zero if bar >= 0 else zero - length
        colour = warm if bar >= 0 else cool
        parts.append(
            f"<g><title>{_e(label)}: {_e(_number(bar))}</title>"
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">'
            f"{_e(label)}</text>"
            f'<rect x="{left:.1f}" y="{y + 2}" width="{length:.1f}" '
            f'height="{row_h - 4}" fill="{colour}"/>'
            f'<text x="{label_w + chart_w + 6}" y="{y + 14}">'
            f"{_e(_number(bar))}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


# ---------------------------------------------------------------------------
# Collecting what to report


@dataclass
class _Item:
    """One section of a report: an explanation and what goes with it."""

    explanation: Explanation
    inputs: NDArray[Any] | None
    label: str
    metrics: Mapping[str, Any] | None = None


def _widget_explanations(widget: Any) -> list[Explanation]:
    many = getattr(widget, "explanations", None)
    if isinstance(many, Mapping):
        found = [e for e in many.values() if isinstance(e, Explanation)]
        if found:
            return found
    if isinstance(many, list | tuple):
        found = [e for e in many if isinstance(e, Explanation)]
        if found:
            return found
    one = widget.explanation
    if one is None:
        raise ValueError(
            f"the {type(widget).__name__} has no explanation yet; wait until it "
            "shows a map (or call its refresh()) before reporting it"
        )
    if not isinstance(one, Explanation):
        raise TypeError(
            f"expected widget.explanation to be an ssx.Explanation; got "
            f"{type(one).__name__}"
        )
    return [one]


def _widget_inputs(widget: Any) -> NDArray[Any] | None:
    """The image a widget shows, as a batch of one, if it says: its
    ``inputs`` array, or the ``image`` / ``image_shape`` traits (uint8
    pixels) of it or of an anywidget inside it."""
    inputs = getattr(widget, "inputs", None)
    if isinstance(inputs, np.ndarray):
        return inputs if inputs.ndim in (2, 4) else inputs[None]
    for holder in [widget, *_anywidgets(widget)]:
        data = getattr(holder, "image", None)
        shape = getattr(holder, "image_shape", None)
        if isinstance(data, bytes | memoryview) and shape is not None:
            shape = tuple(int(s) for s in shape)
            if len(shape) == 3 and shape[0] > 0 and len(data) == math.prod(shape):
                pixels = np.frombuffer(bytes(data), dtype=np.uint8).reshape(shape)
                return pixels[None]
    return None


def _flatten(items: Any) -> list[tuple[Explanation, NDArray[Any] | None]]:
    """Explanations (with a widget's image) out of what the user passed."""
    if isinstance(items, Explanation):
        return [(items, None)]
    if hasattr(items, "explanation"):
        inputs = _widget_inputs(items)
        return [(e, inputs) for e in _widget_explanations(items)]
    if isinstance(items, Mapping):
        items = list(items.values())
    if isinstance(items, Iterable) and not isinstance(items, str | bytes):
        out: list[tuple[Explanation, NDArray[Any] | None]] = []
        for item in items:
            out.extend(_flatten(item))
        return out
    raise TypeError(
        "expected an ssx.Explanation, a widget with an .explanation, or a list "
        f"of them; got {type(items).__name__}"
    )


def _match_inputs(
    exp: Explanation, inputs: NDArray[Any] | None, index: int
) -> NDArray[Any] | None:
    """``inputs`` as the batch ``exp`` explains, or an error naming both shapes."""
    if inputs is None:
        return None
    shape = exp.values.shape
    if inputs.shape == shape or (
        exp.values.ndim == 4 and inputs.shape[:3] == shape[:3]
    ):
        return inputs
    if inputs.shape == shape[1:] and shape[0] == 1:
        return inputs[None]
    if exp.values.ndim == 4 and inputs.ndim == 4 and inputs.shape[0] == shape[0]:
        return inputs  # a display image of another size is stretched
    raise ValueError(
        f"explanation {index + 1} ({exp.method}) has values of shape {shape}; "
        f"the inputs given for it have shape {inputs.shape}. Pass the batch "
        "that was explained, or a list with one batch per explanation"
    )


def _per_explanation(value: Any, n: int, what: str) -> list[Any]:
    """``value`` for each of ``n`` explanations: a list of ``n``, or one shared."""
    if isinstance(value, list | tuple) and len(value) == n and n > 0:
        if all(v is None or isinstance(v, np.ndarray | Mapping) for v in value):
            return list(value)
    if isinstance(value, list | tuple) and what == "metrics":
        raise ValueError(
            f"expected one metrics mapping per explanation ({n}); got {len(value)}"
        )
    return [value] * n


def _metrics_for(
    metrics: Any, explanations: Sequence[Explanation]
) -> list[Mapping[str, Any] | None]:
    n = len(explanations)
    if metrics is None:
        return [None] * n
    if (
        isinstance(metrics, Mapping)
        and metrics
        and all(isinstance(v, Mapping) for v in metrics.values())
    ):
        keyed: list[Mapping[str, Any] | None] = []
        for exp in explanations:
            keyed.append(metrics.get(exp.method))
        unknown = set(metrics) - {e.method for e in explanations}
        if unknown:
            raise ValueError(
                "metrics are keyed by method name; no explanation has method "
                f"{', '.join(map(repr, sorted(unknown)))}"
            )
        return keyed
    if isinstance(metrics, Mapping):
        if n != 1:
            raise ValueError(
                f"one metrics mapping for {n} explanations is ambiguous; pass a "
                "list with one mapping per explanation, or key them by method"
            )
        return [metrics]
    return _per_explanation(metrics, n, "metrics")


# ---------------------------------------------------------------------------
# Sections


def _provenance(exp: Explanation, metrics: Mapping[str, Any] | None) -> str:
    rows: list[tuple[str, str]] = [
        ("method", exp.method),
        ("target", exp.target),
        ("seed", _describe(exp.seed)),
        ("device", exp.device),
        ("progress", f"{exp.progress:.0%}" + ("" if exp.done else " (partial)")),
        ("model evaluations", str(exp.n_evaluations)),
        (
            "convergence",
            "exact method" if exp.convergence is None else _number(exp.convergence),
        ),
        ("outputs", _describe(exp.outputs)),
        ("base values", _describe(exp.base_values)),
    ]
    if exp.segments is not None:
        n_segments = [len(np.unique(s)) for s in np.asarray(exp.segments)]
        rows.append(("segments per input", _describe(np.asarray(n_segments))))
    rows += [(f"param {k}", _describe(v)) for k, v in sorted(exp.params.items())]
    rows += [(k.replace("_", " "), _describe(v)) for k, v in exp.extras.items()]
    rows.append(("versions", _describe(exp.versions) or "not recorded"))
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    out = f'<table class="provenance"><caption>Provenance</caption>{body}</table>'
    if metrics:
        out += _metrics_table(metrics)
    return out


def _metrics_table(metrics: Mapping[str, Any]) -> str:
    rows = []
    for name, value in metrics.items():
        if isinstance(value, Mapping):
            text = _describe(value)
        elif _is_numeric(value) and np.ndim(value) > 0:
            array = np.asarray(value, dtype=np.float64)
            text = f"mean {_number(float(np.nanmean(array)))} over {array.size}: " + (
                _describe(array)
            )
        else:
            text = _describe(value)
        hint = METRIC_HINTS.get(str(name), "")
        rows.append(
            f"<tr><th>{_e(name)}</th><td>{_e(text)}"
            + (f' <span class="hint">({_e(hint)})</span>' if hint else "")
            + "</td></tr>"
        )
    return (
        '<table class="metrics"><caption>Faithfulness</caption>'
        + "".join(rows)
        + "</table>"
    )


def _per_input_metric(metrics: Mapping[str, Any] | None, i: int, n: int) -> str:
    if not metrics:
        return ""
    parts = []
    for name, value in metrics.items():
        if _is_numeric(value) and np.ndim(value) == 1 and np.size(value) == n:
            parts.append(f"{name} {_number(np.asarray(value)[i])}")
    return " · ".join(parts)


def _image_section(item: _Item) -> str:
    exp = item.explanation
    maps = exp.map
    n = len(maps)
    shown = min(n, MAX_INPUTS)
    uncertainty = exp.extras.get("uncertainty")
    if not (
        isinstance(uncertainty, np.ndarray)
        and uncertainty.shape[:1] == (n,)
        and uncertainty.ndim == 3
    ):
        uncertainty = None

    figures = []
    for i in range(shown):
        values = maps[i]
        lo, hi = value_range(values)
        name = colormaps.resolve(colormaps.AUTO, (lo, hi))
        rgba = colormaps.apply(values, (lo, hi), name)
        h, w = values.shape
        cells = []
        if item.inputs is not None:
            pixels = display_pixels(item.inputs[i])
            cells.append(_img(_png(pixels), h, w, f"input {i}"))
            cells.append(
                _img(_png(_overlay(pixels, rgba, OPACITY)), h, w, f"map over input {i}")
            )
        cells.append(_img(_png(rgba), h, w, f"attribution map {i}"))
        legends = [_legend(name, lo, hi, "attribution")]
        if uncertainty is not None:
            u = uncertainty[i]
            ulo, uhi = value_range(u)
            uname = colormaps.resolve(colormaps.AUTO, (ulo, uhi))
            cells.append(
                _img(_png(colormaps.apply(u, (ulo, uhi), uname)), h, w, "uncertainty")
            )
            legends.append(_legend(uname, ulo, uhi, "uncertainty"))
        caption = (
            f"input {i} · output {_number(exp.outputs[i])} · base "
            f"{_number(exp.base_values[i])} · sum of attributions "
            f"{_number(np.nansum(exp.values[i]))}"
        )
        extra = _per_input_metric(item.metrics, i, n)
        if extra:
            caption += " · " + extra
        figures.append(
            f'<figure class="input"><div class="pics">{"".join(cells)}</div>'
            f"{''.join(legends)}<figcaption>{_e(caption)}</figcaption></figure>"
        )
    more = f'<p class="more">showing {shown} of {n} inputs</p>' if n > shown else ""
    return "".join(figures) + more


def _table_section(item: _Item, feature_names: Sequence[str] | None) -> str:
    exp = item.explanation
    values = np.asarray(exp.values)
    n, f = values.shape
    names = exp.feature_names or feature_names or [f"feature {j}" for j in range(f)]
    shown = min(n, MAX_INPUTS)
    figures = []
    for i in range(shown):
        row = None if item.inputs is None else item.inputs[i]
        caption = (
            f"row {i} · output {_number(exp.outputs[i])} = base "
            f"{_number(exp.base_values[i])} + sum of attributions "
            f"{_number(np.nansum(values[i]))}"
        )
        extra = _per_input_metric(item.metrics, i, n)
        if extra:
            caption += " · " + extra
        figures.append(
            '<figure class="input">'
            + bar_chart_svg(values[i], list(names), row)
            + f"<figcaption>{_e(caption)}</figcaption></figure>"
        )
    more = f'<p class="more">showing {shown} of {n} rows</p>' if n > shown else ""
    return "".join(figures) + more


def _section(index: int, item: _Item, feature_names: Sequence[str] | None) -> str:
    exp = item.explanation
    kind = exp.values.ndim
    if kind == 4:
        body = _image_section(item)
    elif kind == 2:
        body = _table_section(item, feature_names)
    else:
        raise ValueError(
            f"expected image (N, H, W, C) or table (N, F) attributions; "
            f"explanation {index} has values of shape {exp.values.shape}"
        )
    return (
        f'<section class="explanation" id="explanation-{index}">'
        f"<h2>{index}. {_e(item.label)}</h2>"
        f'<div class="body">{body}</div>'
        f"{_provenance(exp, item.metrics)}</section>"
    )


# ---------------------------------------------------------------------------
# Pages

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: #222; margin: 24px auto; max-width: 1100px; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 17px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.meta, .more, .hint, figcaption, .legend-label { color: #666; font-size: 12px; }
nav ol { padding-left: 20px; }
figure.input { margin: 10px 0 18px; }
.pics { display: flex; gap: 8px; flex-wrap: wrap; align-items: flex-start; }
img.pic { image-rendering: pixelated; background: #eee; }
.legend { display: flex; gap: 6px; align-items: center; margin-top: 4px;
  font-variant-numeric: tabular-nums; font-size: 12px; }
.legend img.bar { width: 192px; height: 10px; image-rendering: pixelated; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 13px; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th { text-align: left; font-weight: 500; color: #555; padding: 2px 14px 2px 0;
  vertical-align: top; white-space: nowrap; }
td { padding: 2px 0; font-variant-numeric: tabular-nums; word-break: break-word; }
svg.bars text { font: 12px system-ui, sans-serif; fill: #222; }
.note { background: #fff8e1; border-left: 3px solid #f0b400; padding: 6px 10px;
  font-size: 13px; }
.note[hidden] { display: none; }
"""


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def report_html(
    explanations_or_widgets: Any,
    *,
    title: str | None = None,
    inputs: Any = None,
    metrics: Any = None,
    feature_names: Sequence[str] | None = None,
) -> str:
    """The text of the report that :func:`report` writes; same arguments."""
    pairs = _flatten(explanations_or_widgets)
    if not pairs:
        raise ValueError("expected at least one explanation to report; got none")
    explanations = [exp for exp, _ in pairs]
    given = _per_explanation(inputs, len(pairs), "inputs")
    per_metrics = _metrics_for(metrics, explanations)

    items = []
    for k, ((exp, own), shared, m) in enumerate(
        zip(pairs, given, per_metrics, strict=True)
    ):
        batch = shared if shared is not None else own
        array = None if batch is None else np.asarray(batch)
        items.append(
            _Item(exp, _match_inputs(exp, array, k), f"{exp.method} · {exp.target}", m)
        )

    title = title or "ssxwidgets report"
    sections = "".join(
        _section(k, item, feature_names) for k, item in enumerate(items, start=1)
    )
    toc = ""
    if len(items) > 1:
        links = "".join(
            f'<li><a href="#explanation-{k}">{_e(item.label)}</a></li>'
            for k, item in enumerate(items, start=1)
        )
        toc = f"<nav><ol>{links}</ol></nav>"
    header = (
        f"<header><h1>{_e(title)}</h1>"
        f'<p class="meta">{len(items)} explanation(s) · made {_e(_now())} by '
        f"ssxwidgets {_e(__version__)} · self-contained, works offline</p>"
        "</header>"
    )
    return _page(title, f"{header}{toc}<main>{sections}</main>")


def report(
    explanations_or_widgets: Any,
    path: str | Path = "report.html",
    *,
    title: str | None = None,
    inputs: Any = None,
    metrics: Any = None,
    feature_names: Sequence[str] | None = None,
) -> Path:
    """Write one self-contained HTML report of explanations.

    One section per explanation: for images, each input (up to 16) with its
    heatmap over it, the heatmap alone and a colour bar with the value range
    (the widget's colour maps and range rule); for tables, a bar chart of the
    feature attributions of each row. Every section ends with the provenance
    (method, target, parameters, seed, device, versions, model evaluations,
    progress, convergence, extras such as the completeness delta) and any
    faithfulness numbers given. Nothing on the page is fetched: it renders
    offline from the one file.

    Parameters
    ----------
    explanations_or_widgets
        An `Explanation`, a widget (anything with an ``.explanation``), or a
        list (or mapping) of them.
    path
        Where to write; parent folders are made.
    title
        The page title; escaped.
    inputs
        What was explained, to draw under the heatmaps: one batch
        ``(N, H, W, C)`` (or ``(N, F)``) shared by every explanation, or a
        list with one batch per explanation. A widget's own image is used when
        not given.
    metrics
        Faithfulness numbers: a mapping ``name -> value`` (a number, an
        ``(N,)`` array, or a mapping such as `ssx.metrics.randomization`'s)
        for a single explanation; a list of such mappings, one per
        explanation; or a mapping from method name to such a mapping.
    feature_names
        Tables only: names of the ``F`` features, when the explanations do
        not carry them.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    text = report_html(
        explanations_or_widgets,
        title=title,
        inputs=inputs,
        metrics=metrics,
        feature_names=feature_names,
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    logger.info("wrote a report of %s bytes to %s", len(text), out)
    return out


# ---------------------------------------------------------------------------
# Widgets exported as live, kernel-less pages


def _anywidgets(widget: Any) -> list[Any]:
    """Every `anywidget.AnyWidget` in ``widget`` and its ``children``, depth
    first, each once."""
    import anywidget

    found: list[Any] = []
    seen: set[int] = set()

    def visit(node: Any) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, anywidget.AnyWidget):
            found.append(node)
        for child in getattr(node, "children", None) or ():
            visit(child)

    visit(widget)
    return found


def _read_static(name: str) -> str:
    path = STATIC / name
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def _as_text(value: Any) -> str:
    """The text of an ``_esm`` / ``_css`` trait value (a string or file)."""
    if isinstance(value, str):
        return value
    text = getattr(value, "contents", None)
    if isinstance(text, str):
        return text
    path = getattr(value, "path", None) or getattr(value, "_path", None)
    if path is not None and Path(path).is_file():
        return Path(path).read_text(encoding="utf-8")
    return str(value) if value is not None else ""


def _model_state(widget: Any) -> tuple[dict[str, Any], list[dict[str, Any]], str, str]:
    """The synced state of one anywidget, its buffers and its front end.

    Returns
    -------
    state, buffers, esm, css
        The JSON-able state without the buffers; ``[{"path", "data"}]`` with
        each buffer base64-encoded; the module's source and its styles.
    """
    from ipywidgets.widgets.widget import _remove_buffers

    full = widget.get_state()
    esm = _as_text(full.pop("_esm", ""))
    css = _as_text(full.pop("_css", ""))
    # A development URL or a missing module: use the bundle shipped with us.
    if not esm or esm.startswith(("http://", "https://")):
        esm = _read_static("widget.js")
        css = css or _read_static("widget.css")
    state, paths, buffers = _remove_buffers(full)
    encoded = [
        {"path": list(p), "data": base64.b64encode(bytes(b)).decode("ascii")}
        for p, b in zip(paths, buffers, strict=True)
    ]
    return state, encoded, esm, css


def _script_json(payload: Any) -> str:
    """JSON that is safe inside a ``<script>`` element."""
    text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


# The in-page stand-in for the kernel's widget model: the part of the
# anywidget model API a bundle uses (get, set, on, off, save_changes, send),
# change events as Backbone gives them, and a notice where a change would need
# the kernel. Fixed text: nothing is interpolated into it.
_LOADER_JS = r"""
const payload = JSON.parse(document.getElementById("ssx-state").textContent);
const notice = document.getElementById("ssx-notice");

function bytesOf(base64) {
  const text = atob(base64);
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

function putBuffers(state, buffers) {
  for (const { path, data } of buffers) {
    const bytes = bytesOf(data);
    const view = new DataView(bytes.buffer);
    let node = state;
    for (const key of path.slice(0, -1)) node = node[key];
    node[path[path.length - 1]] = view;
  }
  return state;
}

function tell(text) {
  notice.textContent = text;
  notice.hidden = false;
}

class StaticModel {
  constructor(state) {
    this._state = state;
    this._handlers = new Map();
    this._dirty = new Set();
  }
  get(name) { return this._state[name]; }
  set(name, value) {
    const changes = typeof name === "object" ? name : { [name]: value };
    const changed = [];
    for (const [key, next] of Object.entries(changes)) {
      if (this._state[key] === next) continue;
      this._state[key] = next;
      this._dirty.add(key);
      changed.push(key);
    }
    for (const key of changed) this._emit("change:" + key, this, this._state[key]);
    if (changed.length) this._emit("change", this);
  }
  on(events, callback, context) {
    for (const event of String(events).split(/\s+/).filter(Boolean)) {
      if (!this._handlers.has(event)) this._handlers.set(event, []);
      this._handlers.get(event).push({ callback, context });
    }
  }
  off(events, callback) {
    if (events == null) { this._handlers.clear(); return; }
    for (const event of String(events).split(/\s+/).filter(Boolean)) {
      const list = this._handlers.get(event) || [];
      this._handlers.set(
        event, callback ? list.filter((h) => h.callback !== callback) : []);
    }
  }
  save_changes() {
    if (this._dirty.size === 0) return;
    const names = [...this._dirty].join(", ");
    this._dirty.clear();
    tell("No kernel: static export. The change to " + names + " is shown " +
      "here only; nothing is recomputed or saved. Open the notebook with a " +
      "running kernel to explain anew.");
  }
  send() {
    tell("No kernel: static export. This action needs the kernel; open the " +
      "notebook with a running kernel to use it.");
  }
  get widget_manager() {
    return {
      get_model: async () => {
        throw new Error("no kernel: static export has no other models");
      },
    };
  }
  _emit(event, ...args) {
    for (const { callback, context } of this._handlers.get(event) || []) {
      try {
        callback.apply(context, args);
      } catch (error) {
        tell("Error in the widget's view: " + error);
      }
    }
  }
}

async function loadModule(source) {
  const blob = new Blob([source], { type: "text/javascript" });
  const url = URL.createObjectURL(blob);
  try {
    return await import(url);
  } catch (error) {
    const data = "data:text/javascript;base64," +
      btoa(unescape(encodeURIComponent(source)));
    return await import(data);
  } finally {
    URL.revokeObjectURL(url);
  }
}

function addStyles(css) {
  if (!css) return;
  const style = document.createElement("style");
  style.textContent = css;
  document.head.append(style);
}

const modules = {};
for (const [key, { esm, css }] of Object.entries(payload.modules)) {
  addStyles(new TextDecoder().decode(bytesOf(css)));
  modules[key] = new TextDecoder().decode(bytesOf(esm));
}

for (const [index, view] of payload.views.entries()) {
  const el = document.getElementById("ssx-view-" + index);
  try {
    const model = new StaticModel(putBuffers(view.state, view.buffers));
    const experimental = {
      invoke: async () => {
        throw new Error("no kernel: static export");
      },
    };
    const module = await loadModule(modules[view.module]);
    let widget = module.default;
    if (typeof widget === "function") widget = await widget();
    if (widget && typeof widget.initialize === "function") {
      await widget.initialize({ model, experimental });
    }
    const render = widget && widget.render ? widget.render : module.render;
    await render({ model, el, experimental });
    el.dataset.ssxExported = "true";
  } catch (error) {
    const box = document.createElement("pre");
    box.className = "ssx-export-error";
    box.setAttribute("role", "alert");
    box.textContent = "This exported widget could not render: " + error;
    el.append(box);
  }
}
"""


def widget_html(widget: Any, *, title: str | None = None) -> str:
    """One self-contained HTML page that renders ``widget`` live, offline.

    The page holds the widget's front-end module and styles, its synced state
    (binary buffers base64-encoded) and a small in-page model, so the view
    draws in any browser from a ``file://`` URL with no kernel and no network.
    Front-end interactions (opacity, colour map) work; ones that need the
    kernel show a "no kernel: static export" note.

    Parameters
    ----------
    widget
        An `anywidget.AnyWidget`, or a container (an ipywidgets ``Box``)
        holding one or more among its ``children``; each is rendered.
    title
        The page title; escaped. By default the widget's class name.

    Returns
    -------
    str
        The HTML text.
    """
    views = _anywidgets(widget)
    if not views:
        raise TypeError(
            "expected an anywidget.AnyWidget or a container whose children "
            f"hold one; got {type(widget).__name__} with none inside"
        )
    modules: dict[str, dict[str, str]] = {}
    payload_views = []
    for view in views:
        state, buffers, esm, css = _model_state(view)
        key = hashlib.sha1((esm + "\0" + css).encode()).hexdigest()[:12]
        modules.setdefault(
            key,
            {
                "esm": base64.b64encode(esm.encode()).decode("ascii"),
                "css": base64.b64encode(css.encode()).decode("ascii"),
            },
        )
        payload_views.append({"state": state, "buffers": buffers, "module": key})

    title = title or f"{type(widget).__name__} · ssxwidgets"
    placeholders = "".join(
        f'<div class="ssx-export-view" id="ssx-view-{i}"></div>'
        for i in range(len(payload_views))
    )
    explanation = getattr(widget, "explanation", None)
    provenance = (
        _provenance(explanation, None) if isinstance(explanation, Explanation) else ""
    )
    fallback = _static_picture(widget)
    body = (
        f"<header><h1>{_e(title)}</h1>"
        '<p class="meta">Static export of a live widget: it draws here without '
        f"a kernel or a network · made {_e(_now())} by ssxwidgets "
        f"{_e(__version__)}</p></header>"
        '<p class="note" id="ssx-notice" role="status" hidden></p>'
        f"<main>{placeholders}{fallback}{provenance}</main>"
        '<script type="application/json" id="ssx-state">'
        + _script_json({"modules": modules, "views": payload_views})
        + "</script>"
        f'<script type="module">{_LOADER_JS}</script>'
    )
    return _page(title, body)


def _static_picture(widget: Any) -> str:
    """The widget's PNG for pages read without JavaScript, if it has one."""
    to_png = getattr(widget, "to_png", None)
    if not callable(to_png):
        return ""
    try:
        data = to_png()
    except Exception as exc:  # a picture is a courtesy; the export goes on
        logger.warning("no static picture in the export: %s", exc)
        return ""
    uri = "data:image/png;base64," + base64.b64encode(data).decode()
    return f'<noscript><img src="{_e(uri)}" alt="the widget as a picture"></noscript>'


def write_widget_html(
    widget: Any, path: str | Path, *, title: str | None = None
) -> Path:
    """Write :func:`widget_html` of ``widget`` to ``path``; returns the path."""
    text = widget_html(widget, title=title)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    logger.info("wrote the widget export of %s bytes to %s", len(text), out)
    return out
