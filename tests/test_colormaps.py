"""The shared colour maps: one definition, identical LUTs on both sides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ssxwidgets import colormaps

TS_DATA = Path(__file__).resolve().parent.parent / "js" / "src" / "colormapData.ts"


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """Relative luminance (WCAG) of ``(N, 3)`` uint8 sRGB colours."""
    c = rgb.astype(np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return linear @ np.array([0.2126, 0.7152, 0.0722])


def test_typescript_tables_are_generated_from_python() -> None:
    """js/src/colormapData.ts holds exactly the LUTs this module defines."""
    assert TS_DATA.read_text(encoding="utf-8") == colormaps.typescript_source(), (
        "js/src/colormapData.ts is stale: run "
        'python -c "from ssxwidgets.colormaps import write_typescript; '
        "write_typescript('js/src/colormapData.ts')\""
    )


@pytest.mark.parametrize("name", sorted(colormaps.COLORMAPS))
def test_lut_runs_from_first_to_last_control_point(name: str) -> None:
    """Each LUT is (256, 3) uint8, starting and ending on its end colours."""
    table = colormaps.lut(name)
    hexes = colormaps.COLORMAPS[name]
    assert table.shape == (256, 3)
    assert table.dtype == np.uint8
    assert bytes(table[0]).hex() == hexes[0]
    assert bytes(table[-1]).hex() == hexes[-1]


@pytest.mark.parametrize("name", sorted(colormaps.COLORMAPS))
def test_lightness_is_monotonic(name: str) -> None:
    """Sequential maps brighten steadily; diverging ones brighten towards a
    light centre and darken after it, so order reads without hue."""
    lum = _luminance(colormaps.lut(name))
    if name in colormaps.DIVERGING:
        assert np.all(np.diff(lum[:128]) >= -1e-3)
        assert np.all(np.diff(lum[128:]) <= 1e-3)
        assert lum[127] > 0.8
    else:
        assert np.all(np.diff(lum) >= -1e-3)


def test_indices_round_half_up_and_clip() -> None:
    """Values map to round((v - lo) / (hi - lo) * 255), clipped, NaN to -1."""
    got = colormaps.indices([-2.0, -1.0, 0.0, 1.0, 2.0, np.nan], (-1.0, 1.0))
    assert got.tolist() == [0, 0, 128, 255, 255, -1]
    assert colormaps.indices([1.0, 1.49, 1.5], (0.0, 255.0)).tolist() == [1, 1, 2]


def test_empty_range_maps_to_the_middle() -> None:
    """A range with hi <= lo puts every finite value on the middle entry."""
    assert colormaps.indices([3.0, -7.0], (2.0, 2.0)).tolist() == [128, 128]


def test_auto_resolves_by_the_sign_of_the_range() -> None:
    """'auto' is diverging for a signed range and sequential otherwise."""
    assert colormaps.resolve("auto", (-1.0, 1.0)) == colormaps.DEFAULT_DIVERGING
    assert colormaps.resolve("auto", (0.0, 1.0)) == colormaps.DEFAULT_SEQUENTIAL
    assert colormaps.DEFAULT_DIVERGING in colormaps.DIVERGING
    assert colormaps.DEFAULT_SEQUENTIAL not in colormaps.DIVERGING


def test_apply_writes_lut_colours_and_transparent_nan() -> None:
    """apply gives the LUT colour with alpha 255, and alpha 0 for NaN."""
    rgba = colormaps.apply(np.array([[0.0, 1.0, np.nan]]), (0.0, 1.0), "inferno")
    table = colormaps.lut("inferno")
    assert rgba.shape == (1, 3, 4)
    assert rgba[0, 0].tolist() == [*table[0].tolist(), 255]
    assert rgba[0, 1].tolist() == [*table[255].tolist(), 255]
    assert rgba[0, 2].tolist() == [0, 0, 0, 0]


def test_unknown_name_is_rejected_with_the_known_ones() -> None:
    """An unknown colour map name raises, listing the valid names."""
    with pytest.raises(ValueError, match=r"blue_red.*'jet'"):
        colormaps.lut("jet")


def test_all_is_complete() -> None:
    """__all__ lists every public name of the module."""
    public = {
        name
        for name in vars(colormaps)
        if not name.startswith("_")
        and getattr(getattr(colormaps, name), "__module__", None) == colormaps.__name__
    }
    assert public <= set(colormaps.__all__)
