"""Hand-written inline SVG charts for the study report: plain strings, fast, self-contained.

Each chart is one ``<svg role="img">`` element with a ``<title>``; no scripts, no external fonts,
links or stylesheets. All text (titles, labels, legend entries, tick labels, notes) passes
through ``html.escape(..., quote=True)``, since labels come from user data, and characters
that XML forbids are dropped. Missing values (None, NaN, inf) are skipped, never drawn and
never written into coordinates; empty input gives a chart that says "no data".
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

# A qualitative palette of ten colours, cycled by series (or class) index.
PALETTE = (
    "#4e79a7",  # blue
    "#f28e2b",  # orange
    "#e15759",  # red
    "#76b7b2",  # teal
    "#59a14f",  # green
    "#edc948",  # yellow
    "#b07aa1",  # purple
    "#ff9da7",  # pink
    "#9c755f",  # brown
    "#79706e",  # grey
)

_INK = "#333"
_MUTED = "#666"
_GRID = "#e6e6e6"
_AXIS = "#999"
_DOT = "#7f8fa6"  # an interval chart's ordinary mean
_DOT_STRONG = "#1f4e9c"  # the highlighted (winning) row's mean
_BAND = "#fdf3d8"  # behind the highlighted row

_TITLE_HEIGHT = 24
_ROW_HEIGHT = 26
_LEGEND_LINE = 15
_CHAR_PX = 7.0  # estimated width of a character at font-size 12 (generous: no overlap)
_SMALL_CHAR_PX = 6.0  # ... at font-size 10-11
_NOTE_PX = 5.8  # ... in an interval chart's italic notes

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SAFE_COLOUR = re.compile(r"#[0-9a-fA-F]{3,8}|[a-zA-Z]{1,30}|rgba?\([0-9.,%\s]{1,40}\)")


# Small helpers: text, numbers, coordinates.


def _escape(text) -> str:
    """Text made safe for SVG/HTML: characters XML forbids dropped, markup characters escaped."""
    return html.escape(_NOT_XML.sub("", str(text)), quote=True)


def _truncate(text: str, max_chars: int) -> str:
    max_chars = max(2, int(max_chars))
    return text if len(text) <= max_chars else text[: max_chars - 1] + "\u2026"


def _bottom_axis(scale, left: float, right: float, top: float, axis_y: float) -> list[str]:
    """A horizontal value axis under rows: grid lines at the ticks, the axis, the labels."""
    return [
        f'<g stroke="{_GRID}">',
        *(f'<line x1="{_c(scale(t))}" y1="{_c(top)}" x2="{_c(scale(t))}" y2="{_c(axis_y)}"/>'
          for t in scale.ticks),
        "</g>",
        f'<line x1="{_c(left)}" y1="{_c(axis_y)}" x2="{_c(right)}" y2="{_c(axis_y)}" '
        f'stroke="{_AXIS}"/>',
        f'<g font-size="10" fill="{_MUTED}" text-anchor="middle">',
        *(_text(scale(t), axis_y + 13, label) for t, label in zip(scale.ticks, scale.labels)),
        "</g>",
    ]


def _text(x: float, y: float, text, *, max_chars: int | None = None, **attributes) -> str:
    """A <text> element, truncated with an ellipsis past max_chars (full text as a tooltip)."""
    text = str(text)
    shown = text if max_chars is None else _truncate(text, max_chars)
    tooltip = f"<title>{_escape(text)}</title>" if shown != text else ""
    extra = "".join(
        f' {name.rstrip("_").replace("_", "-")}="{_escape(value)}"'
        for name, value in attributes.items() if value is not None
    )
    return f'<text x="{_c(x)}" y="{_c(y)}"{extra}>{_escape(shown)}{tooltip}</text>'


def _c(value: float) -> str:
    """A coordinate rounded to one decimal, without a trailing '.0' or a '-0'."""
    if not math.isfinite(value):  # a last guard: never write 'nan' or 'inf' into markup
        return "0"
    text = f"{value:.1f}"
    if text.endswith(".0"):
        text = text[:-2]
    return "0" if text == "-0" else text


def _text_width(text: str, char_px: float = _CHAR_PX) -> float:
    return len(text) * char_px


def _finite(value) -> float | None:
    """The value as a float, or None when it is missing, not a number, NaN or infinite."""
    if value is None or isinstance(value, (str, bytes)):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _clean(value: float) -> float:
    """Round away floating-point noise such as 0.30000000000000004."""
    return float(f"{value:.12g}")


def _series_colours(requested: Sequence) -> list[str]:
    """One colour per series: a safe requested colour is kept; the others take, in order,
    the palette colours no other series uses (series i gets ``PALETTE[i]`` when none asks for
    a colour), so two series share a colour only past ten series."""
    wanted = [colour.strip() if isinstance(colour, str) and _SAFE_COLOUR.fullmatch(colour.strip())
              else None for colour in requested]
    taken = {colour.lower() for colour in wanted if colour is not None}
    free = [colour for colour in PALETTE if colour.lower() not in taken]
    colours, spare = [], 0
    for index, colour in enumerate(wanted):
        if colour is None:
            colour = free[spare] if spare < len(free) else PALETTE[index % len(PALETTE)]
            spare += 1
        colours.append(colour)
    return colours


def _show_legend(legend: bool | None, count: int) -> bool:
    """``legend=None``: a legend when there is more than one series; True/False: always/never."""
    return count > 1 if legend is None else bool(legend) and count > 0


def format_number(value, digits: int = 4) -> str:
    """A compact label for a number: about ``digits`` significant digits, short exponents.

    ``0.1234567`` -> ``0.1235``, ``12345.6`` -> ``12346``, ``1.5e-05`` -> ``1.5e-5``,
    ``2.5e7`` -> ``2.5e7``; None or NaN -> ``n/a``; infinities -> ``∞`` / ``-∞``.
    """
    if value is None or isinstance(value, (str, bytes)):
        return "n/a"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "n/a"
    if math.isnan(number):
        return "n/a"
    if math.isinf(number):
        return "\u221e" if number > 0 else "-\u221e"
    digits = max(1, int(digits))
    rounded = float(f"{number:.{digits}g}")
    if rounded == 0:
        return "0"
    if 1e4 <= abs(rounded) < 1e6:
        # Whole numbers up to a million read better in full than as 1.235e4.
        return f"{number:.0f}"
    text = f"{number:.{digits}g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


# Axes: nice ticks, linear and logarithmic scales.


def nice_ticks(low: float, high: float, *, count: int = 5, integer: bool = False) -> list[float]:
    """About ``count`` (4-6) round tick values covering [low, high]: steps of 1, 2, 2.5 or 5
    times a power of ten (no 2.5 and no step below 1 when ``integer``). A zero range is padded.
    """
    low, high = _finite(low), _finite(high)
    if low is None or high is None:
        low, high = 0.0, 1.0
    if low > high:
        low, high = high, low
    middle = (low + high) / 2
    if high - low <= 1e-9 * max(abs(middle), 1e-300):
        pad = abs(middle) * 0.1 if middle != 0 else 1.0
        if integer:
            pad = max(1.0, math.ceil(pad))
        low, high = middle - pad, middle + pad
    span = high - low
    if not math.isfinite(span) or span <= 0:
        return [low, high]
    mantissas = (1.0, 2.0, 5.0) if integer else (1.0, 2.0, 2.5, 5.0)
    base = math.floor(math.log10(span / count))
    best: tuple[float, list[float]] | None = None
    exponents = range(max(base - 1, 0), max(base + 3, 1)) if integer else range(base - 1, base + 3)
    for exponent in exponents:
        for mantissa in mantissas:
            step = mantissa * 10.0**exponent
            if integer and step < 1:
                continue
            first = math.floor(low / step + 1e-9)
            last = math.ceil(high / step - 1e-9)
            n = last - first + 1
            waste = ((last - first) * step - span) / span
            score = waste + 0.05 * abs(n - count) + (0.08 if mantissa == 2.5 else 0.0)
            if not 4 <= n <= 6:
                score += 10 + abs(n - count)
            if best is None or score < best[0]:
                best = (score, [_clean(i * step) for i in range(first, last + 1)])
    if best is None or len(best[1]) < 2:  # an integer axis over less than one unit
        return nice_ticks(low, high, count=count) if integer else [low, high]
    return best[1]


def _log_ticks(low: float, high: float) -> tuple[list[float], tuple[float, float]]:
    """Ticks and domain for a log axis over positive [low, high].

    The domain is the data's range padded by 4% (in log space), not rounded out to whole
    decades; the ticks are the powers of ten inside it (thinned to at most seven), else
    1-2-5 values, else, over a narrow range, round linear values placed on the log axis.
    """
    if high / low < 1.0 + 1e-9:
        low, high = low / 2, high * 2
    log_low, log_high = math.log10(low), math.log10(high)
    pad = 0.04 * (log_high - log_low)
    domain = (10.0 ** (log_low - pad), 10.0 ** (log_high + pad))
    first, last = math.floor(log_low - pad), math.ceil(log_high + pad)

    def inside(values):
        return [v for v in values if domain[0] <= v <= domain[1]]

    exponents = [e for e in range(first, last + 1) if domain[0] <= 10.0**e <= domain[1]]
    if len(exponents) > 7:
        stride = math.ceil(len(exponents) / 6)
        exponents = [e for e in exponents if e % stride == 0]
    decades = [_clean(10.0**e) for e in exponents]
    if len(decades) >= 3:
        return decades, domain
    one_two_five = inside(
        sorted(_clean(m * 10.0**e) for e in range(first, last + 1) for m in (1, 2, 5)))
    if 3 <= len(one_two_five) <= 8:
        return one_two_five, domain
    if len(decades) >= 2:
        return decades, domain
    ticks = [t for t in nice_ticks(low, high) if t > 0]
    return ticks, (min(ticks[0], low), max(ticks[-1], high))


class _Axis:
    """Ticks, their labels, and the mapping from data values to pixels along one axis."""

    def __init__(self, values: Iterable[float], *, log: bool = False, integer: bool = False):
        finite = [v for v in values if v is not None]
        self.log = bool(log and finite and min(finite) > 0)
        if self.log:
            self.ticks, (low, high) = _log_ticks(min(finite), max(finite))
        else:
            integer = integer and bool(finite) and all(float(v).is_integer() for v in finite)
            if finite:
                self.ticks = nice_ticks(min(finite), max(finite), integer=integer)
            else:
                self.ticks = nice_ticks(0.0, 1.0)
            low, high = self.ticks[0], self.ticks[-1]
        self.low, self.high = (math.log10(low), math.log10(high)) if self.log else (low, high)
        self.labels = _tick_labels(self.ticks)
        self.start, self.end = 0.0, 1.0

    def place(self, start: float, end: float) -> _Axis:
        self.start, self.end = start, end
        return self

    def __call__(self, value: float) -> float:
        if self.log:
            value = math.log10(value)
        if self.high == self.low:
            return (self.start + self.end) / 2
        return self.start + (value - self.low) / (self.high - self.low) * (self.end - self.start)


def _tick_labels(ticks: Sequence[float]) -> list[str]:
    """Labels for ticks, with as many digits as it takes to tell neighbours apart."""
    labels: list[str] = []
    for digits in range(4, 13):
        labels = [format_number(t, digits) for t in ticks]
        if len(set(labels)) == len(labels):
            break
    return labels


# Chart frame: the <svg> element, title, legend.


def _svg(width: float, height: float, title: str, body: list[str]) -> str:
    width, height = math.ceil(width), math.ceil(height)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" font-family="sans-serif" '
        f'font-size="11" fill="{_INK}"><title>{_escape(title)}</title>' + "".join(body) + "</svg>"
    )


def _title(title: str, width: float) -> list[str]:
    if not title:
        return []
    return [_text(8, 17, title, max_chars=int((width - 16) / 7.5), font_size=13,
                  font_weight="bold")]


def _legend(entries: Sequence[tuple[str, str]], left: float, right: float, top: float,
            *, max_entries: int | None = None) -> tuple[list[str], float]:
    """A legend flowing left to right from (left, top), wrapping at right: markup and height.

    Each entry is a colour swatch (<rect>) and its label; entries past max_entries are
    summarised as "+N more".
    """
    if not entries:
        return [], 0.0
    shown = list(entries if max_entries is None else entries[:max_entries])
    hidden = len(entries) - len(shown)
    parts = ['<g class="legend">']
    x, y = left, top + 6
    for label, colour in shown:
        text = _truncate(str(label), 24)
        entry_width = 14 + _text_width(text, 6.5) + 12
        if x > left and x + entry_width > right:
            x, y = left, y + _LEGEND_LINE
        parts.append(f'<rect x="{_c(x)}" y="{_c(y - 5)}" width="10" height="10" '
                     f'fill="{_escape(colour)}"/>')
        parts.append(_text(x + 14, y, label, max_chars=24, dy="0.35em"))
        x += entry_width
    if hidden:
        more = f"+{hidden} more"
        if x > left and x + _text_width(more, 6.5) > right:
            x, y = left, y + _LEGEND_LINE
        parts.append(_text(x, y, more, dy="0.35em", fill=_MUTED))
    parts.append("</g>")
    return parts, y - top + 8


# The dot-and-whisker chart of a study's models.


def interval_chart(rows: Sequence[Mapping], *, title: str, axis_label: str,
                   direction: str | None, width: int = 560) -> str:
    """A horizontal dot-and-whisker chart, one row per entry, top to bottom in the given order.

    Each row: ``label``; ``mean`` (the dot); ``low``/``high`` (the 95% interval, a whisker
    when both are given); ``points`` (per-seed values, small hollow circles); ``highlight``
    (bold label, stronger dot, faint band: the winner); ``note`` (short text at the row's right
    end). A row without a mean shows only its label and its note ("n/a" when none is given).
    ``direction`` ("lower" or "higher") prints which way is better under the axis.
    """
    if direction not in ("lower", "higher", None):
        raise ValueError(f"direction must be 'lower' or 'higher', got {direction!r}")
    prepared = []
    values: list[float] = []
    for row in rows:
        mean = _finite(row.get("mean"))
        low, high = _finite(row.get("low")), _finite(row.get("high"))
        points = [p for p in map(_finite, row.get("points") or ()) if p is not None]
        note = row.get("note")
        note = None if note is None or str(note) == "" else str(note)
        if mean is None or low is None or high is None:  # no whisker: no say in the axis
            low = high = None
        if mean is None:
            points = []
            note = note or "n/a"
        if low is not None and high is not None and low > high:
            low, high = high, low
        values.extend(v for v in (mean, low, high, *points) if v is not None)
        prepared.append((str(row.get("label", "")), mean, low, high, points,
                         bool(row.get("highlight")), note))

    width = max(int(width), 240)
    label_chars = min(32, max((len(r[0]) for r in prepared), default=0))
    left = min(max(60.0, _text_width("x" * label_chars) + 16), width * 0.34)
    notes = [r[6] for r in prepared if r[6]]
    right = 14.0
    if notes:
        right += min(width * 0.26, _text_width("x" * max(len(n) for n in notes), _NOTE_PX) + 8)
    plot_left, plot_right = left, width - right
    top = 8.0 + (_TITLE_HEIGHT if title else 0)
    rows_bottom = top + _ROW_HEIGHT * max(1, len(prepared))

    body = _title(title, width)
    band_at = len(body)
    if not prepared:
        body.append(_text((plot_left + plot_right) / 2, top + _ROW_HEIGHT / 2, "no data",
                          text_anchor="middle", dy="0.35em", fill=_MUTED))
        return _svg(width, rows_bottom + 10, title, body)

    height = rows_bottom + 8
    scale = None
    if values:
        scale = _Axis(values).place(plot_left, plot_right)
        axis_y = rows_bottom + 4
        body.extend(_bottom_axis(scale, plot_left, plot_right, top, axis_y))
        label_y = axis_y + 28
        middle = (plot_left + plot_right) / 2
        body.append(_text(middle, label_y, axis_label, text_anchor="middle",
                          max_chars=int((plot_right - plot_left) / 6.5)))
        height = label_y + 8
        if direction is not None:
            better = "\u2190 better" if direction == "lower" else "better \u2192"
            half_label = _text_width(str(axis_label), 6.5) / 2
            direction_y = label_y
            if half_label + _text_width(better, 6.5) + 10 > (plot_right - plot_left) / 2:
                direction_y = label_y + 14  # no room beside the axis label: a line below it
            if direction == "lower":
                body.append(_text(plot_left, direction_y, better, font_size=10, fill=_MUTED))
            else:
                body.append(_text(plot_right, direction_y, better, font_size=10, fill=_MUTED,
                                  text_anchor="end"))
            height = direction_y + 8

    label_chars_allowed = int((left - 14) / _CHAR_PX)
    note_chars_allowed = int((right - 22) / _NOTE_PX)
    whiskers, seeds, dots = [], [], []
    for index, (label, mean, low, high, points, highlight, note) in enumerate(prepared):
        y = top + _ROW_HEIGHT * index + _ROW_HEIGHT / 2
        if highlight:  # under everything else, grid lines included
            body.insert(band_at, f'<rect x="0" y="{_c(y - _ROW_HEIGHT / 2)}" width="{width}" '
                        f'height="{_ROW_HEIGHT}" fill="{_BAND}"/>')
        body.append(_text(left - 8, y, label, max_chars=label_chars_allowed, font_size=12,
                          text_anchor="end", dy="0.35em",
                          font_weight="bold" if highlight else None))
        if note:
            body.append(_text(plot_right + 10, y, note, max_chars=note_chars_allowed,
                              dy="0.35em", fill=_MUTED, font_style="italic"))
        if scale is None or mean is None:
            continue
        if low is not None and high is not None:
            x1, x2 = scale(low), scale(high)
            whiskers.append(f'<path d="M{_c(x1)} {_c(y)}H{_c(x2)}M{_c(x1)} {_c(y - 4)}'
                            f'V{_c(y + 4)}M{_c(x2)} {_c(y - 4)}V{_c(y + 4)}"/>')
        seeds.extend(f'<circle cx="{_c(scale(p))}" cy="{_c(y)}" r="2.5"/>' for p in points)
        tooltip = f"{label}: {format_number(mean)}"
        if low is not None and high is not None:
            tooltip += f" (95% interval {format_number(low)} to {format_number(high)})"
        if points:
            tooltip += f"; {len(points)} value{'s' if len(points) != 1 else ''}"
        colour = _DOT_STRONG if highlight else _DOT
        dots.append(f'<circle class="mean" cx="{_c(scale(mean))}" cy="{_c(y)}" '
                    f'r="{5 if highlight else 4.5}" fill="{colour}" stroke="#fff">'
                    f"<title>{_escape(tooltip)}</title></circle>")
    if whiskers:
        body.append('<g class="whiskers" stroke="#555" stroke-width="1.5" fill="none">')
        body.extend(whiskers)
        body.append("</g>")
    if seeds:
        body.append('<g class="seeds" fill="none" stroke="#8c8c8c">')
        body.extend(seeds)
        body.append("</g>")
    body.extend(dots)
    return _svg(width, height, title, body)


# Charts on two axes: scatter, labelled scatter (latent codes), line (training curves).


def _points(raw) -> list[tuple[float, float]]:
    """(x, y) pairs with both coordinates finite; anything else is skipped."""
    points = []
    for pair in raw if raw is not None else ():
        try:
            x, y = pair
        except (TypeError, ValueError):
            continue
        x, y = _finite(x), _finite(y)
        if x is not None and y is not None:
            points.append((x, y))
    return points


def _xy_chart(*, title: str, x_label: str, y_label: str, width: int, height: int,
              xs: list[float], ys: list[float], legend: Sequence[tuple[str, str]],
              draw: Callable[[_Axis, _Axis], list[str]], max_legend: int | None = None,
              log_x: bool = False, log_y: bool = False) -> str:
    """The frame shared by the two-axis charts; ``draw(x_axis, y_axis)`` adds the marks."""
    width, height = max(int(width), 160), max(int(height), 120)
    x_axis = _Axis(xs, log=log_x, integer=True)
    y_axis = _Axis(ys, log=log_y)
    y_label_space = 18 if y_label else 0
    left = 8 + y_label_space + max(_text_width(s, _SMALL_CHAR_PX) for s in y_axis.labels) + 6
    right = max(12.0, _text_width(x_axis.labels[-1], _SMALL_CHAR_PX) / 2 + 4)
    top = 8.0 + (_TITLE_HEIGHT if title else 0)
    legend_parts, legend_height = _legend(legend, left, width - right, top,
                                          max_entries=max_legend)
    top += legend_height + (6 if legend_parts else 0)
    bottom = 8 + 16 + (16 if x_label else 0)
    height = max(height, math.ceil(top + bottom + 80))
    plot_top, plot_bottom = top, height - bottom
    plot_left, plot_right = left, width - right
    x_axis.place(plot_left, plot_right)
    y_axis.place(plot_bottom, plot_top)

    body = _title(title, width) + legend_parts
    body.append(f'<g stroke="{_GRID}">')
    body.extend(f'<line x1="{_c(x_axis(t))}" y1="{_c(plot_top)}" x2="{_c(x_axis(t))}" '
                f'y2="{_c(plot_bottom)}"/>' for t in x_axis.ticks)
    body.extend(f'<line x1="{_c(plot_left)}" y1="{_c(y_axis(t))}" x2="{_c(plot_right)}" '
                f'y2="{_c(y_axis(t))}"/>' for t in y_axis.ticks)
    body.append("</g>")
    body.append(f'<path d="M{_c(plot_left)} {_c(plot_top)}V{_c(plot_bottom)}H{_c(plot_right)}" '
                f'stroke="{_AXIS}" fill="none"/>')
    body.append(f'<g font-size="10" fill="{_MUTED}" text-anchor="middle">')
    body.extend(_text(x_axis(t), plot_bottom + 13, label)
                for t, label in zip(x_axis.ticks, x_axis.labels))
    body.append("</g>")
    body.append(f'<g font-size="10" fill="{_MUTED}" text-anchor="end">')
    body.extend(_text(plot_left - 5, y_axis(t), label, dy="0.35em")
                for t, label in zip(y_axis.ticks, y_axis.labels))
    body.append("</g>")
    if x_label:
        body.append(_text((plot_left + plot_right) / 2, plot_bottom + 29, x_label,
                          text_anchor="middle", max_chars=int((plot_right - plot_left) / 6.5)))
    if y_label:
        middle = (plot_top + plot_bottom) / 2
        body.append(_text(14, middle, y_label, text_anchor="middle",
                          transform=f"rotate(-90 14 {_c(middle)})",
                          max_chars=int((plot_bottom - plot_top) / 6.5)))
    if xs:
        body.extend(draw(x_axis, y_axis))
    else:
        body.append(_text((plot_left + plot_right) / 2, (plot_top + plot_bottom) / 2, "no data",
                          text_anchor="middle", dy="0.35em", fill=_MUTED))
    return _svg(width, height, title, body)


def _polyline(points: Sequence[tuple[float, float]], x_axis: _Axis, y_axis: _Axis,
              colour: str) -> str:
    coordinates = " ".join(f"{_c(x_axis(x))},{_c(y_axis(y))}" for x, y in points)
    return (f'<polyline points="{coordinates}" fill="none" stroke="{_escape(colour)}" '
            f'stroke-width="1.5" stroke-linejoin="round"/>')


_MARKERS = ("circle", "diamond", "square")


def _marker(shape: str, x: float, y: float, tooltip: str) -> str:
    """One point mark (circle, diamond or square) centred on (x, y), with a tooltip."""
    title = f"<title>{_escape(tooltip)}</title>"
    if shape == "diamond":
        return (f'<path d="M{_c(x)} {_c(y - 5)}L{_c(x + 5)} {_c(y)}L{_c(x)} {_c(y + 5)}'
                f'L{_c(x - 5)} {_c(y)}Z">{title}</path>')
    if shape == "square":
        return (f'<rect x="{_c(x - 3.5)}" y="{_c(y - 3.5)}" width="7" height="7">{title}'
                "</rect>")
    return f'<circle cx="{_c(x)}" cy="{_c(y)}" r="3.5">{title}</circle>'


def scatter_chart(series: Sequence[Mapping], *, title: str, x_label: str, y_label: str,
                  width: int = 420, height: int = 320, connect: bool = False,
                  log_x: bool = False, log_y: bool = False, legend: bool | None = None) -> str:
    """Points of one or more series (dicts ``label``, ``points`` [(x, y)], optional ``color``,
    ``marker`` ("circle", "diamond" or "square") and ``opacity`` (0-1, of the marks' fill)).

    Series are drawn in the order given (the last on top), each in its own colour (see
    ``_series_colours``). ``connect=True`` joins each series' points in x order (sweeps,
    rate-distortion curves). A legend lists the series when there is more than one, or always
    with ``legend=True``. ``log_x``/``log_y`` use a log scale when all values on that axis are
    positive.
    """
    colours = _series_colours([s.get("color") for s in series])
    prepared = []
    for s, colour in zip(series, colours):
        marker = s.get("marker")
        opacity = _finite(s.get("opacity"))
        prepared.append((str(s.get("label", "")), colour, _points(s.get("points")),
                         marker if marker in _MARKERS else "circle",
                         None if opacity is None else min(max(opacity, 0.0), 1.0)))
    xs = [x for _, _, points, _, _ in prepared for x, _ in points]
    ys = [y for _, _, points, _, _ in prepared for _, y in points]
    if log_x and any(x <= 0 for x in xs):
        log_x = False
    if log_y and any(y <= 0 for y in ys):
        log_y = False
    entries = [(label, colour) for label, colour, *_ in prepared]
    entries = entries if _show_legend(legend, len(entries)) else []

    def draw(x_axis: _Axis, y_axis: _Axis) -> list[str]:
        marks = []
        for label, colour, points, marker, opacity in prepared:
            if connect and len(points) > 1:
                marks.append(_polyline(sorted(points), x_axis, y_axis, colour))
            if not points:
                continue
            faded = "" if opacity is None else f' fill-opacity="{opacity:.2g}"'
            marks.append(f'<g fill="{_escape(colour)}"{faded} stroke="#fff" '
                         'stroke-width="0.5">')
            marks.extend(
                _marker(marker, x_axis(x), y_axis(y),
                        f"{label + ': ' if label else ''}{format_number(x)}, "
                        f"{format_number(y)}")
                for x, y in points
            )
            marks.append("</g>")
        return marks

    return _xy_chart(title=title, x_label=x_label, y_label=y_label, width=width, height=height,
                     xs=xs, ys=ys, legend=entries, draw=draw, log_x=log_x, log_y=log_y)


def labelled_scatter(x, y, labels=None, *, class_names: Sequence[str] | Mapping | None = None,
                     title: str, width: int = 320, height: int = 320, max_points: int = 2000,
                     x_label: str = "dimension 1", y_label: str = "dimension 2") -> str:
    """Many 2-D points (latent codes) coloured by integer label, with a legend of classes.

    Points with a non-finite coordinate are dropped; beyond ``max_points`` an evenly spaced,
    deterministic subsample is drawn. Colours follow ``PALETTE[label % 10]``, so a class keeps
    its colour across charts. ``class_names`` is a sequence indexed by label or a mapping;
    at most ten classes are listed, then "+N more".
    """
    xs = np.asarray(x, dtype=np.float64).reshape(-1)
    ys = np.asarray(y, dtype=np.float64).reshape(-1)
    if xs.shape != ys.shape:
        raise ValueError(f"x and y must have the same length, got {xs.size} and {ys.size}")
    if labels is not None:
        codes = np.asarray(labels).reshape(-1)
        if codes.size != xs.size:
            raise ValueError(f"labels must have one entry per point: {codes.size} != {xs.size}")
        try:
            codes = codes.astype(np.int64)
        except (TypeError, ValueError) as error:
            raise ValueError("labels must be integers (class indices)") from error
    else:
        codes = None
    keep = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    codes = codes[keep] if codes is not None else None
    classes = sorted(int(c) for c in np.unique(codes)) if codes is not None else []
    if max_points is not None and xs.size > max(1, int(max_points)):
        chosen = np.linspace(0, xs.size - 1, max(1, int(max_points))).round().astype(np.int64)
        xs, ys = xs[chosen], ys[chosen]
        codes = codes[chosen] if codes is not None else None

    def name(label: int) -> str:
        if isinstance(class_names, Mapping):
            return str(class_names.get(label, label))
        if class_names is not None and 0 <= label < len(class_names):
            return str(class_names[label])
        return str(label)

    legend = [(name(c), PALETTE[c % len(PALETTE)]) for c in classes]

    def draw(x_axis: _Axis, y_axis: _Axis) -> list[str]:
        # Both axes are linear here: map all points at once.
        px = x_axis.start + (xs - x_axis.low) * ((x_axis.end - x_axis.start)
                                                 / (x_axis.high - x_axis.low))
        py = y_axis.start + (ys - y_axis.low) * ((y_axis.end - y_axis.start)
                                                 / (y_axis.high - y_axis.low))
        groups = [(PALETTE[0], np.arange(xs.size))] if codes is None else [
            (PALETTE[c % len(PALETTE)], np.flatnonzero(codes == c)) for c in classes]
        marks = []
        for colour, indices in groups:
            if indices.size == 0:
                continue
            marks.append(f'<g fill="{colour}" fill-opacity="0.6">')
            marks.extend(f'<circle cx="{_c(px[i])}" cy="{_c(py[i])}" r="2"/>' for i in indices)
            marks.append("</g>")
        return marks

    return _xy_chart(title=title, x_label=x_label, y_label=y_label, width=width, height=height,
                     xs=xs.tolist(), ys=ys.tolist(), legend=legend, draw=draw, max_legend=10)


def line_chart(series: Sequence[Mapping], *, title: str, x_label: str, y_label: str,
               width: int = 420, height: int = 260, log_y: bool = False,
               legend: bool | None = None) -> str:
    """Polylines of one or more series (dicts ``label``, ``points`` [(x, y)], optional
    ``color``), e.g. validation loss per epoch. A series may give ``lines`` (several point
    lists, e.g. one per seed) instead of ``points``: each is its own line, in the series'
    colour, under one legend entry. Points are joined in the order given; a missing value
    (None, NaN, inf) breaks the line. ``log_y`` uses a log scale when all y > 0, else a
    linear one. Each series has its own colour (see ``_series_colours``); a legend lists the
    series when there is more than one, or always with ``legend=True``.
    """
    prepared = []
    colours = _series_colours([s.get("color") for s in series])
    for s, colour in zip(series, colours):
        segments: list[list[tuple[float, float]]] = []
        for line in s.get("lines") or [s.get("points") or ()]:
            segments.append([])
            for pair in line or ():
                try:
                    x, y = pair
                except (TypeError, ValueError):
                    continue
                x, y = _finite(x), _finite(y)
                if x is None or y is None:
                    if segments[-1]:
                        segments.append([])
                    continue
                segments[-1].append((x, y))
        prepared.append((str(s.get("label", "")), colour,
                         [segment for segment in segments if segment]))
    xs = [x for _, _, segments in prepared for segment in segments for x, _ in segment]
    ys = [y for _, _, segments in prepared for segment in segments for _, y in segment]
    if log_y and any(y <= 0 for y in ys):
        log_y = False
    entries = [(label, colour) for label, colour, _ in prepared]
    entries = entries if _show_legend(legend, len(entries)) else []

    def draw(x_axis: _Axis, y_axis: _Axis) -> list[str]:
        marks = []
        for _, colour, segments in prepared:
            for segment in segments:
                if len(segment) > 1:
                    marks.append(_polyline(segment, x_axis, y_axis, colour))
                else:  # an isolated point would be invisible as a line
                    (x, y), = segment
                    marks.append(f'<circle cx="{_c(x_axis(x))}" cy="{_c(y_axis(y))}" r="2.5" '
                                 f'fill="{_escape(colour)}"/>')
        return marks

    return _xy_chart(title=title, x_label=x_label, y_label=y_label, width=width, height=height,
                     xs=xs, ys=ys, legend=entries, draw=draw, log_y=log_y)


# Horizontal bars: one value per category and series (e.g. an error per feature and model).


def bar_chart(categories: Sequence, series: Sequence[Mapping], *, title: str, x_label: str,
              width: int = 560, legend: bool | None = None) -> str:
    """Horizontal bars, one row group per category (top to bottom in the given order) and in
    it one bar per series (dicts ``label``, ``values`` [one per category], optional
    ``color``). Bars start at zero; a missing value (None, NaN, inf) draws no bar. Category
    labels are truncated past 28 characters (full text as a tooltip). A legend lists the
    series when there is more than one, or always with ``legend=True``.
    """
    names = [str(category) for category in categories]
    colours = _series_colours([s.get("color") for s in series])
    prepared = []
    for s, colour in zip(series, colours):
        values = list(s.get("values") or ())
        values = [_finite(values[i]) if i < len(values) else None for i in range(len(names))]
        prepared.append((str(s.get("label", "")), colour, values))
    values = [v for _, _, row in prepared for v in row if v is not None]

    width = max(int(width), 240)
    count = max(1, len(prepared))
    bar = 10.0 if count <= 2 else 7.0 if count <= 4 else 4.0
    group = max(16.0, count * bar + 8)
    label_chars = min(28, max((len(name) for name in names), default=0))
    left = min(max(60.0, _text_width("x" * label_chars) + 16), width * 0.4)
    right = 20.0
    top = 8.0 + (_TITLE_HEIGHT if title else 0)
    entries = [(label, colour) for label, colour, _ in prepared]
    legend_parts, legend_height = _legend(
        entries if _show_legend(legend, len(entries)) else [], left, width - right, top)
    top += legend_height + (6 if legend_parts else 0)
    rows_bottom = top + group * max(1, len(names))
    body = _title(title, width) + legend_parts
    if not values:
        body.append(_text((left + width - right) / 2, top + group / 2, "no data",
                          text_anchor="middle", dy="0.35em", fill=_MUTED))
        return _svg(width, rows_bottom + 10, title, body)

    scale = _Axis([0.0, *values]).place(left, width - right)
    axis_y = rows_bottom + 4
    body.extend(_bottom_axis(scale, left, width - right, top, axis_y))
    label_y = axis_y + 28
    if x_label:
        body.append(_text((left + width - right) / 2, label_y, x_label, text_anchor="middle",
                          max_chars=int((width - right - left) / 6.5)))
    zero = scale(0.0)
    label_chars_allowed = int((left - 14) / _CHAR_PX)
    for row, name in enumerate(names):
        y = top + group * row
        body.append(_text(left - 8, y + group / 2, name, max_chars=label_chars_allowed,
                          text_anchor="end", dy="0.35em"))
        first = y + (group - count * bar) / 2
        for index, (label, colour, row_values) in enumerate(prepared):
            value = row_values[row]
            if value is None:
                continue
            x1, x2 = sorted((zero, scale(value)))
            tooltip = f"{name}{', ' + label if label else ''}: {format_number(value)}"
            body.append(f'<rect x="{_c(x1)}" y="{_c(first + index * bar)}" '
                        f'width="{_c(max(x2 - x1, 0.5))}" height="{_c(bar - 1)}" '
                        f'fill="{_escape(colour)}"><title>{_escape(tooltip)}</title></rect>')
    return _svg(width, label_y + 8, title, body)
