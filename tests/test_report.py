"""Self-contained HTML reports and widget exports, read back as HTML."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets
import numpy as np
import pytest
import traitlets

from ssxwidgets import colormaps
from ssxwidgets.explanation import Explanation
from ssxwidgets.report import (
    bar_chart_svg,
    report,
    report_html,
    value_range,
    widget_html,
    write_widget_html,
)

EVIL = "<script>alert('x')</script>"
URL_ATTRIBUTES = {"src", "href", "xlink:href", "action", "poster", "data"}


class Page(HTMLParser):
    """Every element's tag and attributes, and the text of scripts and styles."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[tuple[dict[str, str], str]] = []
        self.styles: list[str] = []
        self.text: list[str] = []
        self._open: tuple[str, dict[str, str]] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.elements.append((tag, attributes))
        if tag in ("script", "style"):
            self._open = (tag, attributes)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open is None:
            self.text.append(data)
        elif self._open[0] == "script":
            self.scripts.append((self._open[1], data))
        else:
            self.styles.append(data)

    def tags(self, name: str) -> list[dict[str, str]]:
        return [attrs for tag, attrs in self.elements if tag == name]


def external_references(page: Page) -> list[str]:
    """URLs on the page that are neither ``data:`` nor a fragment of itself."""
    found = []
    for tag, attrs in page.elements:
        for key, value in attrs.items():
            if key in URL_ATTRIBUTES and not value.startswith(("data:", "#")):
                found.append(f"<{tag} {key}={value[:60]!r}>")
        if tag == "link":
            found.append(f"<link {attrs}>")
    for css in page.styles:
        for url in re.findall(r"url\(\s*['\"]?([^'\")]+)", css):
            if not url.startswith("data:"):
                found.append(f"url({url[:60]})")
        if "@import" in css:
            found.append("@import in a style")
    return found


def image_explanation(
    n: int = 2, size: int = 12, seed: int = 0, **changes: Any
) -> Explanation:
    """An image explanation of signed values with the fields methods fill."""
    rng = np.random.default_rng(seed)
    fields: dict[str, Any] = {
        "values": rng.normal(size=(n, size, size, 3)).astype(np.float32),
        "method": "integrated_gradients",
        "target": "class 3 (triangle)",
        "base_values": rng.normal(size=n).astype(np.float32),
        "outputs": rng.normal(size=n).astype(np.float32),
        "params": {"n_steps": 48, "baseline": "blur"},
        "seed": 7,
        "progress": 1.0,
        "n_evaluations": 97,
        "extras": {"completeness_delta": rng.normal(size=n) * 1e-3},
        "device": "GPU:0 (H200)",
        "versions": {"ssxwidgets": "9.9.1", "tensorflow": "2.99.0"},
    }
    fields.update(changes)
    return Explanation(**fields)


def table_explanation(n: int = 2, f: int = 26, seed: int = 1) -> Explanation:
    """A table explanation of ``f`` features with names."""
    rng = np.random.default_rng(seed)
    return Explanation(
        values=rng.normal(size=(n, f)).astype(np.float32),
        method="kernel_shap",
        target="class 1",
        base_values=np.zeros(n, np.float32),
        outputs=rng.random(n).astype(np.float32),
        params={"n_samples": 500},
        seed=3,
        n_evaluations=500,
        convergence=0.02,
        feature_names=[f"feature_{j}" for j in range(f)],
    )


def provenance_tables(page_text: str) -> list[dict[str, str]]:
    """Each provenance table as ``{row heading: cell text}``."""
    tables = re.findall(
        r'<table class="provenance">(.*?)</table>', page_text, flags=re.S
    )
    out = []
    for table in tables:
        rows = re.findall(r"<tr><th>(.*?)</th><td>(.*?)</td></tr>", table)
        out.append({Page(k).text[0]: "".join(Page(v).text) for k, v in rows})
    return out


def decode_png(uri: str) -> np.ndarray:
    from PIL import Image

    assert uri.startswith("data:image/png;base64,")
    data = base64.b64decode(uri.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)))


def test_report_is_one_file_with_no_external_references(tmp_path: Path) -> None:
    """A report of image and table explanations is one HTML file whose every
    src/href is a data: URI or a fragment, with no link, script or import."""
    images = np.random.default_rng(0).random((2, 12, 12, 3), dtype=np.float32)
    path = report(
        [image_explanation(), table_explanation()],
        tmp_path / "sub" / "report.html",
        inputs=[images, None],
    )

    assert path == tmp_path / "sub" / "report.html"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["report.html"]
    page = Page(path.read_text(encoding="utf-8"))
    assert external_references(page) == []
    assert page.tags("script") == []
    assert len(page.tags("img")) > 0
    assert all(
        img["src"].startswith("data:image/png;base64,") for img in page.tags("img")
    )


def test_user_strings_are_escaped() -> None:
    """Titles, targets, parameters, extras and feature names holding markup
    reach the page as text: no element or script comes from them."""
    image = image_explanation(
        target=EVIL,
        params={"baseline": EVIL, EVIL: 1},
        extras={"note": EVIL},
        versions={"ssxwidgets": EVIL},
    )
    table = table_explanation(f=3)
    table.feature_names = [EVIL, "<b>bold</b>", 'a" onmouseover="x']
    text = report_html([image, table], title=EVIL)

    page = Page(text)
    assert "<script>alert" not in text
    assert page.tags("script") == []
    assert page.tags("b") == []
    assert not any("onmouseover" in attrs for _, attrs in page.elements)
    visible = "".join(page.text)
    assert visible.count(EVIL) >= 5
    assert "<b>bold</b>" in visible


def test_provenance_is_present() -> None:
    """Each section lists method, target, seed, device, versions, model
    evaluations, progress, convergence, parameters and extras."""
    exp = image_explanation(progress=0.5, convergence=0.125)
    text = report_html(exp)

    (table,) = provenance_tables(text)
    assert table["method"] == exp.method
    assert table["target"] == exp.target
    assert table["seed"] == str(exp.seed)
    assert table["device"] == exp.device
    assert table["model evaluations"] == str(exp.n_evaluations)
    assert table["progress"].startswith("50%")
    assert table["convergence"] == "0.125"
    assert table["param n_steps"] == "48"
    assert table["param baseline"] == "blur"
    delta = exp.extras["completeness_delta"]
    assert (
        table["completeness delta"]
        == "["
        + ", ".join(f"{v:.4g}" if 1e-3 <= abs(v) < 1e5 else f"{v:.3e}" for v in delta)
        + "]"
    )
    for name, version in exp.versions.items():
        assert f"{name}={version}" in table["versions"]


def test_heatmap_is_colour_mapped_with_the_widget_luts() -> None:
    """The attribution picture is the map through ssxwidgets.colormaps over
    the symmetric percentile range, and the legend states that range."""
    exp = image_explanation(n=1)
    text = report_html(exp)

    page = Page(text)
    (picture,) = [i for i in page.tags("img") if i["alt"] == "attribution map 0"]
    got = decode_png(picture["src"])
    lo, hi = value_range(exp.map[0])
    assert lo == -hi
    want = colormaps.apply(exp.map[0], (lo, hi), colormaps.AUTO)
    np.testing.assert_array_equal(got, want)
    assert f'<span class="lo">{lo:.4g}</span>' in text
    assert f'<span class="hi">{hi:.4g}</span>' in text


def test_images_show_input_overlay_and_map(tmp_path: Path) -> None:
    """With inputs, each image gets the input, the map over it and the map;
    the input picture holds the input's pixels."""
    images = np.random.default_rng(5).random((2, 12, 12, 3), dtype=np.float32)
    page = Page(report_html(image_explanation(), inputs=images))

    alts = [img["alt"] for img in page.tags("img") if img.get("class") == "pic"]
    assert alts == [
        "input 0",
        "map over input 0",
        "attribution map 0",
        "input 1",
        "map over input 1",
        "attribution map 1",
    ]
    first = decode_png(page.tags("img")[0]["src"])
    np.testing.assert_array_equal(first, np.floor(images[0] * 255 + 0.5))


def test_tables_render_as_bar_charts() -> None:
    """A table row becomes an SVG with one bar per feature, largest magnitude
    first, the features past the 20th summed into one bar."""
    exp = table_explanation(n=1, f=26)
    text = report_html(exp)
    page = Page(text)

    assert len(page.tags("svg")) == 1
    rects = page.tags("rect")
    assert len(rects) == 21
    widths = [float(r["width"]) for r in rects[:20]]
    assert widths == sorted(widths, reverse=True)
    values = exp.values[0]
    order = np.argsort(-np.abs(values))
    labels = re.findall(r'<text [^>]*text-anchor="end">([^<]*)</text>', text)
    assert exp.feature_names is not None
    assert labels[:20] == [exp.feature_names[j] for j in order[:20]]
    assert labels[20] == "6 other features"


def test_bar_chart_signs_have_distinct_colours() -> None:
    """Positive and negative attributions are drawn on either side of zero
    in the two ends' colours of the diverging map."""
    svg = bar_chart_svg([2.0, -1.0], ["up", "down"])
    page = Page(svg)
    up, down = page.tags("rect")
    line = page.tags("line")[0]
    zero = float(line["x1"])
    assert float(up["x"]) == pytest.approx(zero)
    assert float(down["x"]) + float(down["width"]) == pytest.approx(zero)
    assert float(up["width"]) == pytest.approx(2 * float(down["width"]))
    assert up["fill"] != down["fill"]


def test_widgets_and_lists_are_accepted() -> None:
    """Anything with an .explanation is reported like its explanation; one
    with none yet is refused with a message saying what to do."""

    class Shown:
        explanation = image_explanation(n=1)

    class Empty:
        explanation = None

    text = report_html([Shown(), image_explanation(n=1, method="lime")])
    assert len(provenance_tables(text)) == 2
    with pytest.raises(ValueError, match="no explanation yet"):
        report_html(Empty())
    with pytest.raises(TypeError, match="expected an ssx.Explanation"):
        report_html(3)


def test_metrics_are_shown_per_method() -> None:
    """Faithfulness numbers keyed by method appear in that method's section,
    per input and as a mean; one unkeyed mapping for several is refused."""
    a, b = image_explanation(), image_explanation(method="occlusion")
    auc = np.array([0.25, 0.5])
    text = report_html([a, b], metrics={"occlusion": {"deletion": auc}})

    first, second = text.split('id="explanation-2"')
    assert "Faithfulness" not in first
    assert "mean 0.375 over 2" in second
    assert "deletion 0.25" in second and "deletion 0.5" in second
    with pytest.raises(ValueError, match="ambiguous"):
        report_html([a, b], metrics={"deletion": auc})
    with pytest.raises(ValueError, match="no explanation has method"):
        report_html([a, b], metrics={"rise": {"deletion": auc}})


def test_inputs_of_the_wrong_shape_are_refused() -> None:
    """Inputs that are not the explained batch raise, naming both shapes."""
    with pytest.raises(ValueError, match=r"\(2, 12, 12, 3\).*\(3, 5\)"):
        report_html(image_explanation(), inputs=np.zeros((3, 5)))


# ---------------------------------------------------------------------------
# Widget exports


class Probe(anywidget.AnyWidget):
    """A small anywidget with a binary trait, a text trait and its own ESM."""

    _esm = "export default { render({ model, el }) { el.textContent = 'x'; } };"
    _css = ".probe { color: red; }"
    data = traitlets.Bytes(b"").tag(sync=True)
    label = traitlets.Unicode("").tag(sync=True)
    shape = traitlets.Tuple(traitlets.Int(), traitlets.Int(), default_value=(0, 0)).tag(
        sync=True
    )


def payload_of(text: str) -> dict[str, Any]:
    page = Page(text)
    (state,) = [s for attrs, s in page.scripts if attrs.get("id") == "ssx-state"]
    return dict(json.loads(state))


def test_widget_export_holds_state_buffers_and_bundle(tmp_path: Path) -> None:
    """The export carries every synced trait, each binary buffer base64 with
    its bytes intact, and the widget's module and styles, in one file."""
    data = np.arange(24, dtype=np.uint8).tobytes()
    widget = Probe(data=data, label="hello", shape=(4, 6))
    path = write_widget_html(widget, tmp_path / "w.html")

    text = path.read_text(encoding="utf-8")
    page = Page(text)
    assert external_references(page) == []
    assert [a.get("type") for a, _ in page.scripts] == ["application/json", "module"]
    payload = payload_of(text)
    (view,) = payload["views"]
    assert view["state"]["label"] == "hello"
    assert view["state"]["shape"] == [4, 6]
    (buffer,) = view["buffers"]
    assert buffer["path"] == ["data"]
    assert base64.b64decode(buffer["data"]) == data
    module = payload["modules"][view["module"]]
    assert base64.b64decode(module["esm"]).decode() == Probe._esm
    assert base64.b64decode(module["css"]).decode() == Probe._css


def test_widget_export_cannot_be_broken_out_of() -> None:
    """A trait holding ``</script>`` and markup stays inside the JSON block:
    the page has exactly its two scripts, and the value reads back intact."""
    widget = Probe(label="</script>" + EVIL + "<!--")
    text = widget_html(widget, title=EVIL)

    page = Page(text)
    assert len(page.tags("script")) == 2
    assert "<script>alert" not in text
    assert payload_of(text)["views"][0]["state"]["label"] == "</script>" + EVIL + "<!--"


def test_widget_export_finds_anywidgets_inside_containers() -> None:
    """A Box holding anywidgets (nested too) exports each of them, in order,
    and a container holding none is refused."""
    first, second = Probe(label="first"), Probe(label="second")
    box = ipywidgets.VBox([ipywidgets.HTML("x"), first, ipywidgets.HBox([second])])

    views = payload_of(widget_html(box))["views"]
    assert [v["state"]["label"] for v in views] == ["first", "second"]
    assert len(payload_of(widget_html(box))["modules"]) == 1
    with pytest.raises(TypeError, match="anywidget"):
        widget_html(ipywidgets.VBox([ipywidgets.HTML("x")]))


# ---------------------------------------------------------------------------
# The command line


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small CNN saved as .keras and a batch of images saved as .npy."""
    import factories

    folder = tmp_path_factory.mktemp("cli")
    model = factories.small_cnn(size=16, n_classes=3)
    model.save(folder / "cnn.keras")
    np.save(folder / "images.npy", factories.images(n=2, size=16))
    return folder / "cnn.keras", folder / "images.npy"


@pytest.mark.slow
def test_cli_writes_a_report(keras_files: tuple[Path, Path], tmp_path: Path) -> None:
    """`ssx report` on a saved Keras model and a .npy batch writes one
    self-contained report with a section per method and their metrics."""
    from ssxwidgets.cli import main

    model, images = keras_files
    out = tmp_path / "cli.html"
    status = main(
        [
            "report",
            "--model",
            str(model),
            "--inputs",
            str(images),
            "--method",
            "saliency",
            "--method",
            "integrated_gradients",
            "--param",
            "n_steps=8",
            "--target",
            "1",
            "--metrics",
            "--title",
            EVIL,
            "--out",
            str(out),
        ]
    )

    assert status == 0
    text = out.read_text(encoding="utf-8")
    page = Page(text)
    assert external_references(page) == []
    tables = provenance_tables(text)
    assert [t["method"] for t in tables] == ["saliency", "integrated_gradients"]
    assert all(t["target"] == "class 1" for t in tables)
    assert tables[1]["param n_steps"] == "8"
    assert text.count("<caption>Faithfulness</caption>") == 2
    assert EVIL not in text


def test_cli_refuses_a_parameter_no_method_takes(
    keras_files: tuple[Path, Path], tmp_path: Path, capsys: Any
) -> None:
    """A --param that none of the chosen methods takes stops the command
    with exit status 2 and names the parameters they do take."""
    from ssxwidgets.cli import main

    model, images = keras_files
    with pytest.raises(SystemExit) as stop:
        main(
            [
                "report",
                "--model",
                str(model),
                "--inputs",
                str(images),
                "--method",
                "saliency",
                "--param",
                "n_samples=10",
                "--out",
                str(tmp_path / "x.html"),
            ]
        )
    assert stop.value.code == 2
    assert "n_samples" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


@pytest.mark.slow
def test_cli_reports_a_demo_table_with_feature_names(tmp_path: Path) -> None:
    """`ssx report --model demo:credit --inputs demo:credit:2` names each bar
    by the demo's feature names."""
    from ssxwidgets.cli import main
    from ssxwidgets.demo import tables

    weights = Path(tables.__file__).with_name("weights") / "credit_model.weights.h5"
    if not weights.is_file():
        pytest.skip("the credit demo's weights are not shipped in this checkout")
    out = tmp_path / "credit.html"
    status = main(
        [
            "report",
            "--model",
            "demo:credit",
            "--inputs",
            "demo:credit:2",
            "--method",
            "gradient_x_input",
            "--out",
            str(out),
        ]
    )

    assert status == 0
    page = Page(out.read_text(encoding="utf-8"))
    assert len(page.tags("svg")) == 2
    labels = {t.split(" = ")[0] for t in page.text if " = " in t}
    assert set(tables.credit(1).feature_names) <= labels


class Pictured(anywidget.AnyWidget):
    """An anywidget showing an image as uint8 pixels, as the image view does."""

    _esm = "export default { render() {} };"
    image = traitlets.Bytes(b"").tag(sync=True)
    image_shape = traitlets.Tuple(
        traitlets.Int(), traitlets.Int(), traitlets.Int(), default_value=(0, 0, 3)
    ).tag(sync=True)


def test_a_widget_report_shows_the_widgets_image() -> None:
    """A container widget's report draws the image its view holds under the
    heatmap, without the inputs being passed again."""
    pixels = np.random.default_rng(2).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    view = Pictured(image=pixels.tobytes(), image_shape=(12, 12, 3))

    class Explainer(ipywidgets.VBox):
        explanation = image_explanation(n=1)

    page = Page(report_html(Explainer(children=[view])))
    (first,) = [i for i in page.tags("img") if i["alt"] == "input 0"]
    np.testing.assert_array_equal(decode_png(first["src"]), pixels)
