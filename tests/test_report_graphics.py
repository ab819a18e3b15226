"""The report's dependency-free graphics: PNG encoding and inline SVG charts."""

from __future__ import annotations

import base64
import io
import re
import struct
import xml.etree.ElementTree as ET
import zlib

import numpy as np
import pytest

from aevae.report import png, svg

SVG_NS = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert(1)</script>"
NAN, INF = float("nan"), float("inf")


def decode(data: bytes) -> np.ndarray:
    image = pytest.importorskip("PIL.Image")
    return np.asarray(image.open(io.BytesIO(data)))


def parse(markup: str) -> ET.Element:
    """Parse a chart, checking what every chart promises: one <svg role="img"> with a title,
    and no NaN or infinity written anywhere."""
    root = ET.fromstring(markup)
    assert root.tag == SVG_NS + "svg"
    assert root.get("role") == "img"
    assert root.find(SVG_NS + "title") is not None
    assert root.get("viewBox").startswith("0 0 ")
    assert not re.search(r"\b(nan|inf|infinity)\b", markup, re.IGNORECASE), markup
    assert "<script" not in markup.lower()
    return root


def texts(root: ET.Element) -> list[str]:
    return ["".join(element.itertext()) for element in root.iter(SVG_NS + "text")]


def legend_entries(root: ET.Element) -> int:
    legend = root.find(f"{SVG_NS}g[@class='legend']")
    return 0 if legend is None else len(legend.findall(SVG_NS + "rect"))


# PNG.


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind, body = data[offset + 4:offset + 8], data[offset + 8:offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length:offset + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks.append((kind, body))
        offset += 12 + length
    return chunks


@pytest.mark.parametrize("shape", [(5, 7), (7, 5, 3), (1, 1), (1, 13, 3), (64, 64)])
def test_png_round_trip_is_exact(shape):
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    data = png.encode_png(pixels)
    kinds = [kind for kind, _ in png_chunks(data)]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    np.testing.assert_array_equal(decode(data), pixels)


def test_png_header_and_rows():
    pixels = np.arange(15, dtype=np.uint8).reshape(3, 5)
    chunks = dict(png_chunks(png.encode_png(pixels)))
    width, height, depth, colour, *_ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (width, height, depth, colour) == (5, 3, 8, 0)
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), dtype=np.uint8).reshape(3, 6)
    assert (raw[:, 0] == 0).all()  # filter type 0 on every row
    np.testing.assert_array_equal(raw[:, 1:], pixels)
    rgb = dict(png_chunks(png.encode_png(np.zeros((2, 2, 3), np.uint8))))
    assert struct.unpack(">IIBBBBB", rgb[b"IHDR"])[3] == 2


def test_png_float_input_is_clipped_scaled_and_rounded():
    values = np.array([[-0.5, 0.0, 0.5, 1.0, 2.0], [0.1, 0.2, 0.3, 0.998, NAN]])
    expected = np.array([[0, 0, 128, 255, 255], [26, 51, 76, 254, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(decode(png.encode_png(values)), expected)
    rgb = np.random.default_rng(1).random((5, 7, 3)).astype(np.float32)
    np.testing.assert_array_equal(decode(png.encode_png(rgb)),
                                  np.rint(rgb.astype(np.float64) * 255).astype(np.uint8))


def test_png_single_channel_axis_is_greyscale():
    pixels = np.random.default_rng(2).integers(0, 256, (4, 6, 1), dtype=np.uint8)
    np.testing.assert_array_equal(decode(png.encode_png(pixels)), pixels[:, :, 0])


@pytest.mark.parametrize("bad", [
    np.zeros((4, 4, 4), np.uint8),  # RGBA is not supported
    np.zeros((4, 4, 2), np.uint8),
    np.zeros(8, np.uint8),
    np.zeros((2, 3, 4, 3), np.uint8),
    np.zeros((0, 5), np.uint8),
    np.zeros((3, 3), np.int64),
    np.zeros((3, 3), bool),
])
def test_png_rejects_bad_shapes_and_dtypes(bad):
    with pytest.raises(ValueError):
        png.encode_png(bad)


def test_upscale():
    pixels = np.arange(6, dtype=np.uint8).reshape(2, 3)
    big = png.upscale(pixels, 4)
    assert big.shape == (8, 12)
    np.testing.assert_array_equal(big[::4, ::4], pixels)
    np.testing.assert_array_equal(big[:4, :4], np.zeros((4, 4)))
    assert png.upscale(np.zeros((2, 3, 3)), 3).shape == (6, 9, 3)
    assert png.upscale(pixels, 1) is not None
    for factor in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            png.upscale(pixels, factor)


def test_png_data_uri():
    pixels = np.random.default_rng(3).random((8, 8))
    uri = png.png_data_uri(pixels, scale=3)
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    image = decode(base64.b64decode(uri[len(prefix):]))
    assert image.shape == (24, 24)
    np.testing.assert_array_equal(image[::3, ::3], np.rint(pixels * 255).astype(np.uint8))


# Numbers and ticks.


@pytest.mark.parametrize("value, text", [
    (0, "0"), (-0.0, "0"), (1, "1"), (-3, "-3"), (0.1234567, "0.1235"), (1 / 3, "0.3333"),
    (0.30000000000000004, "0.3"), (88.25, "88.25"), (12345.6, "12346"), (9999.7, "10000"),
    (1.5e-05, "1.5e-5"), (-1.5e-05, "-1.5e-5"), (2.5e7, "2.5e7"), (123456789, "1.235e8"),
    (1e300, "1e300"), (None, "n/a"), (NAN, "n/a"), (INF, "\u221e"), (-INF, "-\u221e"),
    (np.float32(0.5), "0.5"),
])
def test_format_number(value, text):
    assert svg.format_number(value) == text


@pytest.mark.parametrize("low, high", [
    (0, 1), (83.2, 91.7), (0.0012, 0.0047), (-3, 7), (1, 1000), (5, 5), (0, 0), (-2.5, -2.5),
    (7, 3),
])
def test_nice_ticks_cover_the_range(low, high):
    ticks = svg.nice_ticks(low, high)
    assert 4 <= len(ticks) <= 6
    assert ticks[0] <= min(low, high) and ticks[-1] >= max(low, high)
    assert ticks[0] < ticks[-1]
    steps = np.diff(ticks)
    np.testing.assert_allclose(steps, steps[0])
    assert all(len(svg.format_number(t)) <= 6 for t in ticks)


def test_nice_ticks_for_integers_are_whole():
    ticks = svg.nice_ticks(1, 7, integer=True)
    assert all(float(t).is_integer() for t in ticks)
    assert ticks[0] <= 1 and ticks[-1] >= 7


# Interval chart.


ROWS = [
    {"label": "vae", "mean": 88.2, "low": 87.5, "high": 89.0, "points": [87.8, 88.1, 88.9]},
    {"label": "iwae", "mean": 86.1, "low": 85.7, "high": 86.6, "points": [85.9, 86.4],
     "highlight": True},
    {"label": "ae", "mean": None, "note": "n/a: no likelihood"},
    {"label": "beta-vae", "mean": 92.0, "points": [91.0, NAN, None, 93.0]},
]


def test_interval_chart_rows_whiskers_points_and_highlight():
    root = parse(svg.interval_chart(ROWS, title="NLL", axis_label="nats", direction="lower"))
    whiskers = root.find(f"{SVG_NS}g[@class='whiskers']")
    assert len(whiskers) == 2  # only the rows with both low and high
    seeds = root.find(f"{SVG_NS}g[@class='seeds']")
    assert len(seeds) == 3 + 2 + 2  # NaN and None skipped, the mean-less row shows none
    means = [c for c in root.iter(SVG_NS + "circle") if c.get("class") == "mean"]
    assert len(means) == 3
    bold = [t for t in root.iter(SVG_NS + "text") if t.get("font-weight") == "bold"]
    assert [t.text for t in bold] == ["NLL", "iwae"]  # the title, then the winner
    strong = [m.get("fill") for m in means]
    assert strong[1] != strong[0] and strong[0] == strong[2]
    all_text = texts(root)
    assert "n/a: no likelihood" in all_text
    assert "\u2190 better" in all_text
    assert "nats" in all_text
    # Rows run top to bottom in the given order.
    labels = {t.text: float(t.get("y")) for t in root.iter(SVG_NS + "text")}
    assert labels["vae"] < labels["iwae"] < labels["ae"] < labels["beta-vae"]


def test_interval_chart_direction_and_height():
    one = svg.interval_chart(ROWS[:1], title="t", axis_label="x", direction="higher")
    assert "better \u2192" in texts(parse(one))
    many = svg.interval_chart(ROWS * 5, title="t", axis_label="x", direction="higher")
    height = lambda markup: float(parse(markup).get("height"))  # noqa: E731
    assert height(many) - height(one) == pytest.approx(19 * 26)
    with pytest.raises(ValueError):
        svg.interval_chart(ROWS, title="t", axis_label="x", direction="sideways")


def test_interval_chart_labels_stay_left_of_the_plot():
    rows = [{"label": "a very long model name " * 5, "mean": 1.0}, {"label": "b", "mean": 2.0}]
    root = parse(svg.interval_chart(rows, title="t", axis_label="x", direction="lower"))
    label = next(t for t in root.iter(SVG_NS + "text") if t.text and t.text.startswith("a very"))
    assert label.text.endswith("\u2026")
    assert label.find(SVG_NS + "title").text == rows[0]["label"]  # the full name as a tooltip
    dots = [float(c.get("cx")) for c in root.iter(SVG_NS + "circle")]
    right_end = float(label.get("x"))
    assert len(label.text) * 7 <= right_end + 1  # the estimated text fits left of its anchor
    assert min(dots) > right_end


@pytest.mark.parametrize("rows", [
    [],
    [{"label": "only", "mean": None}],
    [{"label": "one", "mean": 3.0}],
    [{"label": "a", "mean": 2.0, "low": 2.0, "high": 2.0, "points": [2.0, 2.0]},
     {"label": "b", "mean": 2.0}],
    [{"label": "missing", "mean": NAN, "low": INF, "high": -INF, "points": [NAN]},
     {"label": "zero", "mean": 0.0, "low": None, "high": 1.0}],
    [{"label": "reversed", "mean": 1.0, "low": 2.0, "high": 0.0}],
    [{"label": "big", "mean": 1e12, "low": -1e12, "high": 3e12}],
])
def test_interval_chart_degenerate_input(rows):
    root = parse(svg.interval_chart(rows, title="t", axis_label="x", direction="lower"))
    if not rows:
        assert "no data" in texts(root)


# Hostile text everywhere.


def all_charts(text: str) -> list[str]:
    series = [{"label": text, "points": [(0, 1), (1, 2)]}, {"label": "b", "points": [(2, 3)]}]
    return [
        svg.interval_chart([{"label": text, "mean": 1.0, "note": text}], title=text,
                           axis_label=text, direction="lower"),
        svg.scatter_chart(series, title=text, x_label=text, y_label=text, connect=True),
        svg.line_chart(series, title=text, x_label=text, y_label=text),
        svg.labelled_scatter([0, 1], [0, 1], [0, 1], class_names=[text, "b"], title=text,
                             x_label=text, y_label=text),
    ]


def test_text_is_escaped_in_every_chart():
    for markup in all_charts(HOSTILE):
        root = parse(markup)
        assert HOSTILE not in markup
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup
        assert HOSTILE in texts(root)


def test_quotes_and_control_characters_keep_the_markup_valid():
    for markup in all_charts('say "hi" & \'bye\'\x00\x1b'):
        assert 'say "hi" & \'bye\'' in texts(parse(markup))


def test_hostile_colour_is_not_written():
    markup = svg.scatter_chart(
        [{"label": "a", "points": [(0, 0)], "color": '"/><script>alert(1)</script>'},
         {"label": "b", "points": [(1, 1)], "color": "#123abc"}],
        title="t", x_label="x", y_label="y")
    parse(markup)
    assert "alert" not in markup
    assert "#123abc" in markup


# Two-axis charts.


def test_scatter_chart_points_legend_and_lines():
    series = [{"label": f"s{i}", "points": [(1, i), (4, i + 1), (2, i + 3)]} for i in range(3)]
    root = parse(svg.scatter_chart(series, title="t", x_label="x", y_label="y", connect=True))
    assert len(list(root.iter(SVG_NS + "circle"))) == 9
    lines = list(root.iter(SVG_NS + "polyline"))
    assert len(lines) == 3
    xs = [float(pair.split(",")[0]) for pair in lines[0].get("points").split()]
    assert xs == sorted(xs)  # joined in x order
    assert legend_entries(root) == 3
    fills = {g.get("fill") for g in root.iter(SVG_NS + "g") if g.find(SVG_NS + "circle")}
    assert fills == set(svg.PALETTE[:3])
    single = parse(svg.scatter_chart(series[:1], title="t", x_label="x", y_label="y"))
    assert legend_entries(single) == 0
    assert not list(single.iter(SVG_NS + "polyline"))


@pytest.mark.parametrize("series", [
    [],
    [{"label": "empty", "points": []}],
    [{"label": "one", "points": [(1.0, 2.0)]}],
    [{"label": "flat", "points": [(1.0, 2.0), (2.0, 2.0), (3.0, 2.0)]}],
    [{"label": "same", "points": [(5, 5), (5, 5)]}],
    [{"label": "bad", "points": [(NAN, 1), (1, None), (INF, 2), (3,), None, (2, 2)]}],
    [{"label": "wide", "points": [(-1e9, 1e-9), (1e9, -1e-9)]}],
])
def test_scatter_chart_degenerate_input(series):
    for connect in (False, True):
        root = parse(svg.scatter_chart(series, title="t", x_label="x", y_label="y",
                                       connect=connect))
        finite = [p for s in series for p in s["points"]
                  if p is not None and len(p) == 2
                  and all(v is not None and np.isfinite(v) for v in p)]
        assert len(list(root.iter(SVG_NS + "circle"))) == len(finite)
        if not finite:
            assert "no data" in texts(root)


def test_scatter_chart_log_axes():
    series = [{"label": "a", "points": [(0.01, 1), (1, 10), (100, 1000)]}]
    root = parse(svg.scatter_chart(series, title="t", x_label="x", y_label="y", log_x=True,
                                   log_y=True))
    labels = texts(root)
    assert "0.01" in labels and "100" in labels and "1000" in labels
    xs = sorted(float(c.get("cx")) for c in root.iter(SVG_NS + "circle"))
    assert xs[1] - xs[0] == pytest.approx(xs[2] - xs[1], abs=0.2)  # equal steps in log space


def test_labelled_scatter_subsamples_and_colours_by_class():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(5000), rng.standard_normal(5000)
    labels = np.arange(5000) % 3
    markup = svg.labelled_scatter(x, y, labels, class_names=["zero", "one", "two"], title="z",
                                  max_points=700)
    root = parse(markup)
    assert markup.count("<circle") == 700
    assert legend_entries(root) == 3
    assert {"zero", "one", "two", "dimension 1", "dimension 2"} <= set(texts(root))
    groups = [g for g in root.iter(SVG_NS + "g") if g.find(SVG_NS + "circle") is not None]
    assert [g.get("fill") for g in groups] == list(svg.PALETTE[:3])
    # Deterministic: the same input gives the same chart.
    assert markup == svg.labelled_scatter(x, y, labels, class_names=["zero", "one", "two"],
                                          title="z", max_points=700)
    few = svg.labelled_scatter(x[:50], y[:50], labels[:50], title="z", max_points=700)
    assert few.count("<circle") == 50


def test_labelled_scatter_lists_ten_classes_then_more():
    n = 300
    labels = np.arange(n) % 15
    root = parse(svg.labelled_scatter(np.arange(n), np.arange(n) % 7, labels, title="z"))
    assert legend_entries(root) == 10
    assert "+5 more" in texts(root)
    named = parse(svg.labelled_scatter([0, 1], [1, 0], [3, 7], class_names={3: "cat", 7: "dog"},
                                       title="z", x_label="u", y_label="v"))
    assert {"cat", "dog", "u", "v"} <= set(texts(named))


def test_labelled_scatter_without_labels_and_degenerate_input():
    root = parse(svg.labelled_scatter([0.0, 1.0, NAN], [1.0, INF, 2.0], None, title="z"))
    assert len(list(root.iter(SVG_NS + "circle"))) == 1
    assert legend_entries(root) == 0
    assert "no data" in texts(parse(svg.labelled_scatter([], [], None, title="z")))
    parse(svg.labelled_scatter([1.0] * 5, [2.0] * 5, [0] * 5, title="z"))
    with pytest.raises(ValueError):
        svg.labelled_scatter([0, 1], [0], None, title="z")
    with pytest.raises(ValueError):
        svg.labelled_scatter([0, 1], [0, 1], [0], title="z")


def test_line_chart_series_gaps_and_legend():
    series = [
        {"label": "train", "points": [(1, 5.0), (2, 4.0), (3, 3.5)]},
        {"label": "valid", "points": [(1, 6.0), (2, NAN), (3, 4.5), (4, 4.2), (5, None)]},
    ]
    root = parse(svg.line_chart(series, title="t", x_label="epoch", y_label="loss"))
    lines = list(root.iter(SVG_NS + "polyline"))
    assert len(lines) == 2  # train, and valid after its gap
    assert len(list(root.iter(SVG_NS + "circle"))) == 1  # valid's isolated first point
    assert legend_entries(root) == 2
    ticks = [t for t in texts(root) if re.fullmatch(r"-?[\d.]+", t)]
    assert "2.5" not in ticks  # whole-number epochs get whole-number ticks


def test_line_chart_several_lines_share_one_legend_entry_and_colour():
    series = [{"label": "vae", "color": "#1f77b4",
               "lines": [[(1, 5.0), (2, 4.0)], [(1, 5.5), (2, 4.5), (3, 4.4)]]},
              {"label": "ae", "points": [(1, 3.0), (2, 2.0)]}]
    root = parse(svg.line_chart(series, title="t", x_label="epoch", y_label="loss"))
    lines = list(root.iter(SVG_NS + "polyline"))
    assert len(lines) == 3 and legend_entries(root) == 2
    assert lines[0].get("stroke") == lines[1].get("stroke") == "#1f77b4" != lines[2].get("stroke")


def test_line_chart_log_scale_and_fallback():
    decay = [{"label": "a", "points": [(e, 10.0 ** -e) for e in range(5)]}]
    log = parse(svg.line_chart(decay, title="t", x_label="x", y_label="y", log_y=True))
    assert {"1", "0.01", "0.0001"} <= set(texts(log))
    ys = [float(pair.split(",")[1])
          for pair in next(log.iter(SVG_NS + "polyline")).get("points").split()]
    np.testing.assert_allclose(np.diff(ys), np.diff(ys)[0], atol=0.2)
    negative = [{"label": "a", "points": [(0, -1.0), (1, 2.0)]}]
    parse(svg.line_chart(negative, title="t", x_label="x", y_label="y", log_y=True))


@pytest.mark.parametrize("series", [
    [],
    [{"label": "one", "points": [(1, 2)]}],
    [{"label": "flat", "points": [(1, 0.0), (2, 0.0)]}],
    [{"label": "gaps", "points": [(None, None), (NAN, NAN), (1, INF)]}],
])
def test_line_chart_degenerate_input(series):
    for log_y in (False, True):
        parse(svg.line_chart(series, title="t", x_label="x", y_label="y", log_y=log_y))


def test_charts_fit_their_declared_size():
    charts = all_charts("label") + [svg.labelled_scatter(
        np.arange(40), np.arange(40), np.arange(40), title="t")]
    for markup in charts:
        root = parse(markup)
        width, height = float(root.get("width")), float(root.get("height"))
        assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}"
        for element in root.iter():
            for name in ("x", "x1", "x2", "cx"):
                if element.get(name) is not None:
                    assert -1 <= float(element.get(name)) <= width + 1
            for name in ("y", "y1", "y2", "cy"):
                if element.get(name) is not None:
                    assert -1 <= float(element.get(name)) <= height + 1


# The report's figures (aevae.report.html), from hand-built results and arrays.


def charts_in(markup: str) -> list[ET.Element]:
    return [parse(chart) for chart in re.findall(r"<svg .*?</svg>", markup, re.DOTALL)]


def chart_title(root: ET.Element) -> str:
    return root.find(SVG_NS + "title").text


def legend_labels(root: ET.Element) -> list[str]:
    legend = root.find(f"{SVG_NS}g[@class='legend']")
    return [] if legend is None else texts(legend)


def mark_fills(root: ET.Element) -> list[str]:
    """The fill of each group of point marks, in drawing order."""
    return [g.get("fill") for g in root.iter(SVG_NS + "g")
            if g.find(SVG_NS + "circle") is not None or g.find(SVG_NS + "path") is not None]


def test_rate_distortion_charts_keep_likelihood_families_apart():
    from aevae.report.html import curve_figures

    likelihoods = {"vae": "bernoulli", "iwae": "bernoulli", "ppca": "gaussian",
                   "gvae": "gaussian-learned"}
    results = {
        "labels": {key: key.upper() for key in likelihoods},
        "study": {"shared_options": {"likelihood": "bernoulli"},
                  "models": {key: {"likelihood": value} for key, value in likelihoods.items()}},
        "rate_distortion": {key: [{"seed": 0, "rate": 5.0 + i, "distortion": 21.0 - 44 * (
            value != "bernoulli")}] for i, (key, value) in enumerate(likelihoods.items())},
        "runs": [],
    }
    charts = charts_in(curve_figures(results))
    assert len(charts) == 2
    bernoulli, gaussian = charts  # the study's own family first
    assert "Bernoulli" in chart_title(bernoulli) and "Gaussian" in chart_title(gaussian)
    assert legend_labels(bernoulli) == ["VAE", "IWAE"]
    assert legend_labels(gaussian) == ["PPCA", "GVAE"]  # gaussian and gaussian-learned
    # A model keeps its colour in every chart, and a family of one still names its model.
    results["rate_distortion"].pop("gvae")
    markup = curve_figures(results)
    assert "not drawn together" in markup
    _, alone = charts_in(markup)
    assert legend_labels(alone) == ["PPCA"]
    assert mark_fills(alone) == [svg.PALETTE[2]]
    # Without per-model likelihoods (older results): one chart, the study's family.
    del results["study"]["models"]
    only = charts_in(curve_figures(results))
    assert len(only) == 1 and "Bernoulli" in chart_title(only[0])


def sweep_results(rows: dict[str, list[str]]) -> dict:
    roster = [{"key": f"{model}:latent_dim={size}", "model": model,
               "options": {"latent_dim": size}} for size in (2, 8) for model in ("ae", "vae")]
    tasks = []
    for name, models in rows.items():
        metric_rows = {entry["key"]: {"available": entry["model"] in models, "mean": 1.0}
                       for entry in roster}
        tasks.append({"skipped": None, "metrics": [{"label": name, "unit": "",
                                                    "rows": metric_rows}]})
    return {"study": {"preset": {"sweep": "latent_dim"}, "roster": roster,
                      "shared_options": {"latent_dim": 2}}, "tasks": tasks}


def test_sweep_charts_give_each_family_its_colour_and_a_legend():
    from aevae.report.html import sweep_figures

    both, vae_only = charts_in(sweep_figures(sweep_results(
        {"mse": ["ae", "vae"], "log p(x)": ["vae"]})))
    assert legend_labels(both) == ["ae", "vae"]
    assert mark_fills(both) == [svg.PALETTE[0], svg.PALETTE[1]]
    assert legend_labels(vae_only) == ["vae"]  # one series: still a legend
    assert mark_fills(vae_only) == [svg.PALETTE[1]]  # the VAE's colour, not the AE's


def test_series_colours_stay_distinct_and_legends_can_be_forced():
    # A requested colour that the palette would give another series: that one moves on.
    series = [{"label": "a", "points": [(0, 0)], "color": svg.PALETTE[1]},
              {"label": "b", "points": [(1, 1)]}, {"label": "c", "points": [(2, 2)]}]
    root = parse(svg.scatter_chart(series, title="t", x_label="x", y_label="y"))
    fills = mark_fills(root)
    assert len(set(fills)) == 3 and fills[0] == svg.PALETTE[1]
    lines = parse(svg.line_chart(series, title="t", x_label="x", y_label="y"))
    assert len({c.get("fill") for c in lines.iter(SVG_NS + "circle")}) == 3
    assert len(set(svg._series_colours([None] * 10))) == 10
    for chart in (svg.scatter_chart, svg.line_chart):
        one = [{"label": "only", "points": [(0, 1), (1, 2)]}]
        assert legend_labels(parse(chart(one, title="t", x_label="x", y_label="y",
                                         legend=True))) == ["only"]
        assert legend_entries(parse(chart(series, title="t", x_label="x", y_label="y",
                                          legend=False))) == 0


def tabular_arrays(data_points: int = 36, draws: int = 1000, features: int = 4) -> dict:
    rng = np.random.default_rng(0)
    return {"seed": 0, "data_2d": rng.standard_normal((data_points, 2)),
            "prior_2d": rng.standard_normal((draws, 2)),
            "ex_post_2d": rng.standard_normal((draws, 2)),
            "reconstruction_error_per_feature": np.linspace(0.1, 1.0, features)}


def test_tabular_samples_are_subsampled_and_drawn_under_the_data():
    from aevae.report.html import tabular_figures

    markup = tabular_figures({"vae": tabular_arrays()}, {"vae": "VAE"})
    scatter = charts_in(markup)[0]
    groups = [g for g in scatter.iter(SVG_NS + "g")
              if g.find(SVG_NS + "circle") is not None or g.find(SVG_NS + "path") is not None]
    assert [len(list(g)) for g in groups] == [200, 200, 36]  # max(200, 3 x 36) draws each
    data = groups[-1]  # drawn last, so on top, in its own colour and marker
    assert data.find(SVG_NS + "circle") is None and data.get("fill") not in {
        g.get("fill") for g in groups[:-1]}
    assert legend_labels(scatter) == ["prior draws", "ex-post draws", "test data"]
    assert "at most 200 prior and 200 ex-post draws" in markup
    assert "of the 1,000 drawn" in markup
    # More data points raise the cap; fewer draws than the cap are all shown, with no note.
    many = charts_in(tabular_figures({"vae": tabular_arrays(100)}, {"vae": "VAE"}))[0]
    assert len(list(many.iter(SVG_NS + "circle"))) == 600
    few = tabular_figures({"vae": tabular_arrays(draws=50)}, {"vae": "VAE"})
    assert len(list(charts_in(few)[0].iter(SVG_NS + "circle"))) == 100
    assert "at most" not in few
    # Deterministic.
    assert markup == tabular_figures({"vae": tabular_arrays()}, {"vae": "VAE"})


def test_feature_error_chart_names_features_and_draws_bars(tmp_path):
    from aevae.data import load_dataset
    from aevae.report.html import tabular_figures
    from aevae.study import StudySettings
    from aevae.study.runner import prepare_data

    path = tmp_path / "table.csv"
    rows = ["height,weight,colour index,kind"] + [
        f"{i},{2 * i % 7},{i % 3},{'ab'[i % 2]}" for i in range(40)]
    path.write_text("\n".join(rows) + "\n")
    names = ["height", "weight", "colour index"]
    assert list(load_dataset(path, labels="kind").feature_names) == names
    description = prepare_data(StudySettings(data=str(path), labels="kind")).description
    assert description["feature_names"] == names

    arrays = {key: tabular_arrays(features=3) for key in ("ae", "vae")}
    markup = tabular_figures(arrays, {"ae": "AE", "vae": "VAE"}, feature_names=names)
    bars = charts_in(markup)[-1]
    assert not list(bars.iter(SVG_NS + "polyline"))
    assert len([r for r in bars.iter(SVG_NS + "rect") if r.find(SVG_NS + "title") is not None
                ]) == 6
    assert set(names) <= set(texts(bars)) and legend_labels(bars) == ["AE", "VAE"]
    # The names can also travel with the arrays (as _first_seed_arrays puts them).
    for values in arrays.values():
        values["feature_names"] = names
    assert markup == tabular_figures(arrays, {"ae": "AE", "vae": "VAE"})
    # Unknown names: "feature 1..D".
    plain = charts_in(tabular_figures({"ae": tabular_arrays(features=3)}, {"ae": "AE"}))[-1]
    assert {"feature 1", "feature 2", "feature 3"} <= set(texts(plain))
    # Many features: the 30 with the largest error, in column order, and the caption says so.
    wide = tabular_arrays(features=45)
    wide["reconstruction_error_per_feature"] = np.arange(45.0)[::-1]  # feature 1 is the worst
    wide["reconstruction_error_per_feature"][40] = np.nan
    markup = tabular_figures({"ae": wide}, {"ae": "AE"})
    shown = [t for t in texts(charts_in(markup)[-1]) if t.startswith("feature ")]
    assert shown == [f"feature {i}" for i in range(1, 31)]
    assert "Showing the 30 of 45 features with the largest mean error" in markup


def test_bar_chart_degenerate_input():
    parse(svg.bar_chart([], [], title="t", x_label="x"))
    empty = parse(svg.bar_chart(["a"], [{"label": "s", "values": [NAN]}], title="t",
                                x_label="x"))
    assert "no data" in texts(empty)
    root = parse(svg.bar_chart(["a", "b", HOSTILE], [{"label": "s", "values": [1, -2, None]}],
                               title="t", x_label="x"))
    assert HOSTILE in texts(root)
    widths = [float(r.get("width")) for r in root.iter(SVG_NS + "rect")]
    assert len(widths) == 2 and all(w > 0 for w in widths)


def test_runs_table_says_closed_form_not_best_none():
    from aevae.report.html import settings_section

    def run(entry, best, epochs):
        return {"label": entry, "entry": entry, "seed": 0, "status": "finished",
                "reused": False, "trained_now": True, "epochs_run": epochs,
                "best_epoch": best, "train_seconds": 1.0, "evaluation_seconds": 1.0,
                "device": "cpu", "id": f"id-{entry}", "versions": {}}

    results = {
        "study": {"roster": [{"key": key, "model": key} for key in ("pca", "ppca", "vae")],
                  "settings": {}, "budget": {}, "shared_options": {}, "data": {},
                  "device": "cpu", "store": "runs.sqlite", "metric_groups": []},
        "runs": [run("pca", None, 1), run("ppca", None, 1), run("vae", None, 3),
                 run("vae", 2, 3)],
    }
    markup = settings_section(results)
    assert "None" not in markup
    assert markup.count("<td>closed form</td>") == 2
    assert "<td>3 (best n/a)</td>" in markup and "<td>3 (best 2)</td>" in markup


def test_image_grids_show_values_outside_the_unit_interval_in_their_own_range():
    """8-bit or standardised values were clipped to [0, 1]: all white (or black)."""
    from aevae.report.figures import display_range, image_grid

    pixels = np.arange(32, dtype=np.float32).reshape(2, 4, 4) * 8  # 0 .. 248
    assert display_range(pixels) == (0.0, 248.0)
    grid = image_grid(pixels, columns=2, value_range=display_range(pixels))
    assert grid.min() == 0.0 and grid.max() == 1.0 and len(np.unique(grid)) > 20
    unit = pixels / 248.0
    assert display_range(unit) == (0.0, 1.0)
    np.testing.assert_allclose(image_grid(unit, columns=2), grid, atol=1e-6)
