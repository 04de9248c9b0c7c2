"""notebooks/quickstart.ipynb executed headless: it runs, in time, and its
story holds.

The notebook is run once per module with nbclient (the ``python3`` kernel, a
temporary working folder), then each test reads one claim the notebook's text
makes from the ``text/plain`` output of the cell that computes it, found by
cell id. The numbers are the notebook's own, computed when it ran.
"""

from __future__ import annotations

import ast
import logging
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

logger = logging.getLogger(__name__)

QUICKSTART = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"

#: the issue's promise: top to bottom in under a minute once the kernel is up
BUDGET_S = 60.0
#: the test fails only past the budget plus half of it, because a CI machine
#: (2 cores, shared) is noisy; between the two it warns with the measured time
LIMIT_S = 90.0
#: the longest one cell may take
CELL_TIMEOUT_S = 180

#: methods the notebook's compare view shows side by side
COMPARED = {"integrated_gradients", "lime", "partition_shap"}


@dataclass
class Run:
    """One execution of the notebook.

    Attributes
    ----------
    notebook
        The executed notebook, its outputs filled in.
    seconds
        From the first cell's start to the last cell's end (kernel start-up
        excluded).
    cell_seconds
        Seconds per code cell, by cell id.
    folder
        The kernel's working folder, where the notebook writes its files.
    """

    notebook: Any
    seconds: float
    cell_seconds: dict[str, float]
    folder: Path

    def cell(self, cell_id: str) -> Any:
        """The cell with id ``cell_id``."""
        for cell in self.notebook.cells:
            if cell.get("id") == cell_id:
                return cell
        raise AssertionError(f"the quickstart has no cell with id {cell_id!r}")

    def value(self, cell_id: str) -> Any:
        """The Python literal a cell's result shows (its ``text/plain``)."""
        for output in self.cell(cell_id).outputs:
            if output.output_type == "execute_result":
                return ast.literal_eval(output.data["text/plain"])
        raise AssertionError(f"cell {cell_id!r} shows no result")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The quickstart executed once, errors recorded rather than raised."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from ssxwidgets.demo import image_models

    if not (image_models.WEIGHTS_DIR / image_models.PROBE_FILE).is_file():
        pytest.skip("the demo's image weights are not shipped in this checkout")

    folder = tmp_path_factory.mktemp("quickstart")
    notebook = nbformat.read(str(QUICKSTART), as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        allow_errors=True,
        resources={"metadata": {"path": str(folder)}},
    )
    cell_seconds: dict[str, float] = {}
    with client.setup_kernel():
        started = time.perf_counter()
        for index, cell in enumerate(notebook.cells):
            cell_started = time.perf_counter()
            client.execute_cell(cell, index)
            if cell.cell_type == "code":
                cell_seconds[cell.id] = time.perf_counter() - cell_started
        seconds = time.perf_counter() - started
    return Run(notebook, seconds, cell_seconds, folder)


def _errors(run: Run) -> list[str]:
    found = []
    for cell in run.notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                found.append(f"cell {cell.id}: {output.ename}: {output.evalue}")
    return found


@pytest.mark.slow
def test_every_cell_runs_without_error(run: Run) -> None:
    """Every code cell of the quickstart runs, top to bottom, without an
    error and without an ssxwidgets warning."""
    assert _errors(run) == []
    code = [c for c in run.notebook.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    streams = "".join(
        o.get("text", "") for c in code for o in c.outputs if o.output_type == "stream"
    )
    assert "SsxWarning" not in streams


@pytest.mark.slow
def test_runs_in_under_a_minute(run: Run, request: pytest.FixtureRequest) -> None:
    """The quickstart runs top to bottom within the minute once the kernel
    has started (failing only past `LIMIT_S`, for a noisy machine).

    The time is logged and kept as the test's ``quickstart_seconds``
    property (``--junitxml`` with ``-o junit_family=legacy`` writes it).
    """
    request.node.user_properties.append(("quickstart_seconds", round(run.seconds, 1)))
    slowest = sorted(run.cell_seconds.items(), key=lambda kv: -kv[1])[:3]
    timing = f"{run.seconds:.1f} s; slowest cells: " + ", ".join(
        f"{name} {seconds:.1f} s" for name, seconds in slowest
    )
    logger.info("the quickstart took %s", timing)
    assert run.seconds <= LIMIT_S, f"the quickstart took {timing}"
    if run.seconds > BUDGET_S:
        warnings.warn(
            f"the quickstart took {timing}: over its {BUDGET_S:.0f} s budget "
            "(within the noise allowance); profile the slowest cells",
            stacklevel=2,
        )


@pytest.mark.slow
def test_first_widget_is_the_saliency_view_the_browser_test_reads(run: Run) -> None:
    """The first widget the quickstart shows is ``w``, saliency of the demo
    probe on ``data.images[0]`` of ``demo.shapes(16, seed=7)``, and the
    notebook names the ``python3`` kernel, as the browser test assumes."""
    assert run.notebook.metadata.kernelspec.name == "python3"
    sources = []
    for cell in run.notebook.cells:
        if cell.cell_type != "code":
            continue
        sources.append(cell.source)
        shows_widget = any(
            "application/vnd.jupyter.widget-view+json" in o.get("data", {})
            for o in cell.outputs
        )
        if shows_widget:
            break
    before = "\n".join(sources)
    assert 'w = ssx.explain(model, image, method="saliency")' in sources[-1]
    for line in (
        "data = demo.shapes(16, seed=7)",
        "model = demo.load_probe()",
        "image = data.images[0]",
    ):
        assert line in before


@pytest.mark.slow
def test_contrastive_encoder_holds_the_classes(run: Run) -> None:
    """A linear probe on the contrastive encoder scores at least 85 % on
    fresh images and at least twice the random encoder's, which stays near
    chance."""
    accuracy = run.value("probe-accuracy")
    assert accuracy["contrastive encoder"] >= 0.85
    assert accuracy["shipped probe"] >= 0.85
    assert accuracy["contrastive encoder"] >= 2 * accuracy["random encoder"]
    assert accuracy["random encoder"] <= 2 * accuracy["chance"]


@pytest.mark.slow
def test_shipped_probe_scores_what_its_model_card_says(run: Run) -> None:
    """The shipped probe's accuracy on the notebook's fresh images is within
    5 points of the accuracy its model card records."""
    accuracy = run.value("probe-accuracy")
    assert (
        abs(accuracy["shipped probe"] - accuracy["shipped probe, model card"]) <= 0.05
    )


@pytest.mark.slow
def test_nearest_neighbours_share_the_class(run: Run) -> None:
    """In the contrastive embedding neighbours mostly share a class: at least
    6 of the query's 8 nearest, shown as one picture, and 80 % of every
    image's 5 nearest over the pool (random encoder: near chance)."""
    agreement = run.value("neighbour-agreement")
    assert agreement["contrastive"] >= 0.8
    assert agreement["random"] <= 0.4

    cell = run.cell("neighbours")
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    classes = re.findall(r"^\d\. image +\d+ +(\w+)", text, flags=re.MULTILINE)
    assert len(classes) == 8
    query = run.value("decision")["true class"]
    assert classes.count(query) >= 6, classes
    pictures = [o for o in cell.outputs if "image/png" in o.get("data", {})]
    assert len(pictures) == 1


@pytest.mark.slow
def test_label_free_maps_rest_on_the_object(run: Run) -> None:
    """Label-free saliency of the contrastive encoder puts on the object at
    least twice the object's share of the image, where the random encoder's
    stays near that share; integrated gradients from a blurred baseline also
    favours the object, more for the contrastive encoder than the random."""
    mass = run.value("mass-in-object")
    area = mass["object area"]
    assert mass["saliency"]["contrastive"] >= 2 * area
    assert mass["saliency"]["contrastive"] > mass["saliency"]["random"]
    assert mass["saliency"]["random"] <= 1.5 * area
    ig = mass["integrated_gradients"]
    assert ig["contrastive"] > ig["random"] > area


@pytest.mark.slow
def test_every_compared_method_explains_the_decision_by_the_object(run: Run) -> None:
    """The probe classifies the first image, a ring, correctly, and integrated
    gradients, LIME and Partition SHAP each put more of their mass on the
    object than its share of the image."""
    decision = run.value("decision")
    assert decision["predicted"] == decision["true class"] == "ring"
    mass = run.value("compare-mass")
    area = mass.pop("object area")
    assert set(mass) == COMPARED
    assert all(share > area for share in mass.values()), mass


@pytest.mark.slow
def test_integrated_gradients_beats_a_random_map(run: Run) -> None:
    """Integrated gradients is more faithful than random noise: lower
    deletion AUC, higher insertion AUC, and a pointing game above the
    object's area."""
    scores = run.value("faithfulness")
    ig, noise = scores["integrated_gradients"], scores["random"]
    area = run.value("mass-in-object")["object area"]
    assert ig["deletion"] < noise["deletion"]
    assert ig["insertion"] > noise["insertion"]
    assert ig["pointing game"] > max(area, noise["pointing game"])


@pytest.mark.slow
def test_shortcut_collapses_when_the_patch_is_shuffled(run: Run) -> None:
    """The shortcut classifier, near perfect with the cue, loses more than 30
    points of accuracy, down to near chance, when the patch colour is
    shuffled, and follows the patch instead; the self-supervised probe loses
    under 5."""
    result = run.value("shortcut-accuracy")
    cued = result["shortcut model, patch follows the class"]
    shuffled = result["shortcut model, patch shuffled"]
    assert cued >= 0.95
    assert cued - shuffled > 0.30
    assert shuffled <= 2 / 6
    assert result["shortcut model agrees with the patch"] >= 0.9
    probe_drop = (
        result["probe, patch follows the class"] - result["probe, patch shuffled"]
    )
    assert abs(probe_drop) < 0.05


@pytest.mark.slow
def test_shortcut_maps_point_at_the_patch(run: Run) -> None:
    """Integrated gradients on the shortcut classifier puts its strongest
    pixel in the patch for at least three images in four and rarely on the
    object; saliency lands in the patch at least ten times more often than
    chance."""
    pointing = run.value("shortcut-pointing")
    ig = pointing["integrated_gradients"]
    assert ig["in the patch"] >= 0.75
    assert ig["on the object"] <= 0.2
    assert pointing["saliency"]["in the patch"] >= 10 * pointing["patch area"]


@pytest.mark.slow
def test_report_holds_every_view(run: Run) -> None:
    """The export cell writes one self-contained report with a section per
    explanation of the five views (the compare view's three included)."""
    page = (run.folder / "quickstart-report.html").read_text(encoding="utf-8")
    assert page.count('<section class="explanation"') == 7
    for method in ("saliency", *COMPARED):
        assert f"{method} · " in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
