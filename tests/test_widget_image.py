"""The image explainer's kernel side: traits, buffers, errors, static picture."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import numpy as np
import pytest
import traitlets
from factories import images, small_cnn
from ipywidgets.widgets.widget import _remove_buffers
from PIL import Image

from ssxwidgets import colormaps
from ssxwidgets.widgets import ImageExplainer, explain_image
from ssxwidgets.widgets import _view as view_module
from ssxwidgets.widgets import image as image_module

HOSTILE = '<img src=x onerror="alert(1)">&amp;<script>x</script>'


def _stage_pixel(png: bytes, y: int, x: int) -> tuple[int, int, int]:
    """The RGB of the PNG's picture at stage pixel (y, x), below the caption."""
    picture = Image.open(io.BytesIO(png)).convert("RGB")
    offset = 6 + 16  # margin + caption line, as laid out by widgets._png
    rgb = picture.getpixel((6 + x, offset + y))
    assert isinstance(rgb, tuple)
    return (int(rgb[0]), int(rgb[1]), int(rgb[2]))


def test_synced_traits_round_trip_through_state() -> None:
    """Every synced trait of the view survives get_state/set_state
    unchanged."""
    source = ImageExplainer(colormap="inferno", opacity=0.25)
    source.set_image(images(1, size=8)[0])
    source.show_map(np.linspace(-1, 1, 48).reshape(6, 8), method="occlusion")
    source.view.set_trait("device", "GPU:0 (test)")

    target = ImageExplainer()
    target.view.set_state(source.view.get_state())
    for name in source.view.keys:
        if name.startswith("_") or name in ("layout", "tabbable", "tooltip"):
            continue
        assert getattr(target.view, name) == getattr(source.view, name), name


def test_arrays_travel_as_binary_buffers() -> None:
    """The image and the heatmap leave the kernel as buffers, not JSON."""
    w = ImageExplainer()
    w.set_image(images(1, size=8)[0])
    w.show_map(np.ones((8, 8)))
    state, paths, buffers = _remove_buffers(w.view.get_state())
    assert ["image"] in paths and ["heatmap"] in paths
    assert "image" not in state and "heatmap" not in state
    assert sum(len(bytes(b)) for b in buffers) == 8 * 8 * 3 + 8 * 8 * 2


@pytest.mark.parametrize("magnitude", [1e-7, 1e-3, 1.0, 1e4])
def test_heatmap_bytes_decode_to_the_map(magnitude: float) -> None:
    """The float16 heatmap times value_scale gives the map back to within
    float16 precision, for tiny and large magnitudes alike."""
    rng = np.random.default_rng(1)
    values = rng.normal(size=(12, 10)) * magnitude
    values[3, 4] = np.nan
    w = ImageExplainer()
    w.show_map(values)
    decoded = w.heatmap_values()
    assert decoded.shape == (12, 10)
    assert np.isnan(decoded[3, 4])
    finite = ~np.isnan(values)
    scale = np.abs(values[finite]).max()
    np.testing.assert_allclose(decoded[finite], values[finite], atol=1e-3 * scale)
    assert len(w.view.heatmap) == 2 * 12 * 10


def test_value_range_is_symmetric_for_signed_maps() -> None:
    """A signed map gets (-q, q) and a non-negative one (0, q)."""
    signed = ImageExplainer()
    signed.show_map(np.array([[-1.0, 0.5], [0.25, 0.0]]))
    lo, hi = (v * signed.view.value_scale for v in signed.view.value_range)
    assert lo == -hi and hi > 0
    magnitude = ImageExplainer()
    magnitude.show_map(np.array([[0.0, 0.5], [0.25, 2.0]]))
    assert magnitude.view.value_range[0] == 0.0


def test_version_grows_with_every_map_even_across_threads() -> None:
    """Each show_map gets a version one above every earlier one, also when
    threads send concurrently."""
    w = ImageExplainer()
    sent: list[int] = []
    lock = threading.Lock()

    def send(k: int) -> None:
        for _ in range(20):
            version = w.show_map(np.full((4, 4), float(k)))
            with lock:
                sent.append(version)

    threads = [threading.Thread(target=send, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(sent) == list(range(1, 81))
    assert w.version == 80


def test_widget_computes_the_engine_saliency_map() -> None:
    """explain_image draws the engine's saliency map of the model's input."""
    from ssxwidgets.api import attribute

    model = small_cnn(size=16)
    x = images(1, size=16)[0]
    w = explain_image(model, x)
    assert w.wait(60)
    assert w.error == ""
    assert w.version >= 1
    assert w.method == "saliency"
    expected = attribute(model, x, method="saliency").map[0]
    peak = float(np.abs(expected).max())
    np.testing.assert_allclose(w.heatmap_values(), expected, atol=2e-3 * peak)
    assert w.explanation is not None and w.explanation.method == "saliency"
    w.close()


def test_errors_reach_the_error_trait() -> None:
    """A failing computation shows its error and a failed status, raises
    nothing, and the next good map clears the error."""

    def not_differentiable(batch: np.ndarray) -> np.ndarray:
        return batch.reshape(len(batch), -1)[:, :3]

    w = explain_image(not_differentiable, images(1, size=8)[0], method="saliency")
    assert w.wait(60)
    assert "TypeError" in w.error
    assert "gradients" in w.error
    assert "failed" in w.view.status
    assert w.version == 0
    w.show_map(np.zeros((8, 8)))
    w.view.error = ""
    assert w.error == ""
    w.close()


def test_refresh_without_a_model_says_what_is_missing() -> None:
    """refresh on a widget made without a model raises, naming what is
    needed."""
    with pytest.raises(ValueError, match="needs a model and an image"):
        ImageExplainer().refresh()


def test_invalid_display_settings_are_rejected() -> None:
    """An unknown colour map or an opacity outside [0, 1] is refused."""
    w = ImageExplainer()
    with pytest.raises(traitlets.TraitError, match="blue_red"):
        w.colormap = "jet"
    with pytest.raises(traitlets.TraitError, match=r"\[0, 1\]"):
        w.opacity = 1.5


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (np.full((2, 2, 3), 0.5, np.float32), 128),
        (np.full((2, 2, 3), 200.0), 200),
        (np.full((1, 2, 2, 3), 7, np.uint8), 7),
        (np.full((2, 2), 1.0), 255),
        (np.full((2, 2, 1), 300, np.int32), 255),
    ],
)
def test_display_image_becomes_uint8_rgb(image: np.ndarray, expected: int) -> None:
    """Images of the common dtypes, ranges and channel counts become uint8
    RGB pixels of the same height and width."""
    pixels, shape = image_module.display_image(image)
    assert shape == (2, 2, 3)
    assert pixels.dtype == np.uint8
    assert np.all(pixels == expected)


def test_display_image_rejects_a_wrong_shape() -> None:
    """Something that is not one image raises, naming the shapes accepted."""
    with pytest.raises(ValueError, match=r"\(H, W, C\).*\(5,\)"):
        image_module.display_image(np.zeros(5))


def test_user_strings_are_never_markup() -> None:
    """Method, status, device and error text reach no HTML the kernel makes:
    the bundle holds no text/html, and nothing in it carries the raw string."""
    w = ImageExplainer()
    w.set_image(images(1, size=8)[0])
    w.show_map(np.ones((8, 8)), method=HOSTILE, device=HOSTILE, status=HOSTILE)
    w.view.set_trait("error", HOSTILE)
    data, _ = w._repr_mimebundle_()
    assert "text/html" not in data
    for mime, value in data.items():
        if isinstance(value, str):
            assert "<img" not in value and "<script" not in value, mime
    Image.open(io.BytesIO(data["image/png"])).verify()


def test_png_blends_the_colour_mapped_heatmap_over_the_image() -> None:
    """The static PNG colours each pixel like the front end: the LUT colour
    blended over the image at `opacity`."""
    w = ImageExplainer(colormap="blue_red", opacity=1.0)
    w.set_image(np.zeros((4, 4, 3), np.uint8))
    values = np.zeros((4, 4))
    values[0, 0], values[3, 3] = -1.0, 1.0
    w.show_map(values)
    png = w.to_png()
    table = colormaps.lut("blue_red")
    zoom = 320 // 4
    assert _stage_pixel(png, 0, 0) == tuple(table[0])
    assert _stage_pixel(png, 3 * zoom + 1, 3 * zoom + 1) == tuple(table[255])

    w.opacity = 0.0
    assert _stage_pixel(w.to_png(), 0, 0) == (0, 0, 0)


def test_missing_bundle_shows_a_message_in_the_widget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a built front end, the widget's module explains how to build
    it instead of failing to import."""
    monkeypatch.setattr(view_module, "_BUNDLE", view_module.Path("/nonexistent.js"))
    source = view_module._bundle()
    assert isinstance(source, str)
    assert "front-end bundle is missing" in source
    assert "npm" in source


@pytest.mark.parametrize("name", ["ssxwidgets.widgets", "ssxwidgets.widgets.image"])
def test_all_is_complete(name: str) -> None:
    """The widget modules list every public name in __all__."""
    import importlib

    module = importlib.import_module(name)
    public = {
        key
        for key, value in vars(module).items()
        if not key.startswith("_")
        and getattr(value, "__module__", None) == name
        and callable(value)
    }
    assert public <= set(module.__all__), public - set(module.__all__)


def test_save_html_writes_one_offline_file(tmp_path: Path) -> None:
    """save_html writes one HTML file that carries the view's front end and
    its heatmap, and loads nothing from the network."""
    w = ImageExplainer()
    w.set_image(images(1, size=8)[0])
    w.show_map(np.linspace(0, 1, 64).reshape(8, 8))
    path = w.save_html(tmp_path / "view.html")
    text = path.read_text(encoding="utf-8")
    assert path.stat().st_size > 1000
    assert "ssx-export-view" in text
    assert "https://" not in text.replace("https://github.com", "")
    w.close()
