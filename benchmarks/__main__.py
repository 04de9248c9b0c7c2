"""Speed and sample efficiency of the engine, as ratios measured in one run.

Run from the repository root::

    PYTHONPATH=. .venv/bin/python -m benchmarks            # small CNN + MobileNetV2
    PYTHONPATH=. .venv/bin/python -m benchmarks --quick    # the small CNN only

Yardsticks, each measured in the same run, interleaved with what it judges
(so a load that comes and goes hits both):

- the forward floor: the same number of evaluations done as well-batched
  calls of one compiled forward function (full batches of the adapter's
  batch size, the remainder as one exact-size batch), fed numpy batches;
- the gradient floor: one compiled forward + backward pass over as many
  points as the method evaluated, in batches of the adapter's batch size;
- ``lime_image`` as users call it (``model.predict``, lime's default batch of
  10 and quickshift segmentation, 1,000 samples).

Each speed row shows the method's best wall time, the wall ratio judged
against the target (the median over pairs of a method run and a floor run
made back to back, which goes first alternating), the quartiles of those
pair ratios in square brackets (how far the pairs scatter), and in round
brackets the same median of their process CPU times, which other processes
disturb less. Each run uses a new seed, so no run
reuses the samples cached by the one before. Ratios are method / floor: 1.00
means no overhead at all.

Other sections: new evaluations when ``n_samples`` (``max_evals``) rises
from 1,000 to 2,000; peak traced memory at 4,000 and 16,000 samples; and
LIME's samples to a Spearman correlation of 0.9 with a 10,000-sample
reference, ours against ``lime_image``'s. ``--only speed,users`` runs some
sections; results and their reading are in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import platform
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

import ssxwidgets as ssx
from ssxwidgets.models import ModelAdapter

#: evaluations of each perturbation method on the small CNN
EVALUATIONS = 1000
#: the same on MobileNetV2 (each costs ~50 times more)
EVALUATIONS_LARGE = 300
#: grid of sample counts searched for Spearman >= 0.9
CONVERGENCE_GRID = (
    *(20, 30, 40, 50, 60, 75, 100, 125, 150, 200, 250, 300, 400, 500, 600, 800),
    *(1000, 1200, 1600, 2000, 2400, 3200, 4000, 4800, 6400),
)
REFERENCE_SAMPLES = 10_000
SECTIONS = ("speed", "users", "incremental", "memory", "convergence", "mobilenet")


@dataclass
class Row:
    """One line of the report."""

    section: str
    name: str
    value: str
    target: str = ""
    met: bool | None = None

    def line(self) -> str:
        verdict = {True: "met", False: "MISSED", None: ""}[self.met]
        return f"{self.name:<44} {self.value:>22}  {self.target:<16} {verdict}"


class Report:
    """Rows collected in one run, printed as a table at the end."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.notes: list[str] = []

    def add(
        self,
        section: str,
        name: str,
        value: str,
        target: str = "",
        met: bool | None = None,
    ) -> None:
        row = Row(section, name, value, target, met)
        self.rows.append(row)
        print(f"  [{section}] {row.line()}", flush=True)

    def render(self) -> str:
        lines = []
        section = None
        for row in self.rows:
            if row.section != section:
                section = row.section
                lines.append(f"\n== {section}")
            lines.append(row.line())
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


# -- timing --------------------------------------------------------------------


def best(times: list[float]) -> float:
    """The mean of the fastest third of `times`: the runs least disturbed by
    other work, less at the mercy of one lucky run than the minimum."""
    fastest = sorted(times)[: max(1, len(times) // 3)]
    return float(np.mean(fastest))


Timing = tuple[float, float]


def timed(fn: Callable[[], Any]) -> Timing:
    """Wall-clock and process CPU seconds (all threads) of one call of `fn`."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


class Floors:
    """Compiled forward and forward + backward passes of one model, the
    yardsticks every method is measured against."""

    def __init__(self, model: Any, x: np.ndarray, batch_size: int) -> None:
        self.batch_size = batch_size
        self.forward_fn = tf.function(lambda b: model(b, training=False))
        n_outputs = int(np.prod(model.output_shape[1:]))
        weights = np.zeros((1, n_outputs), np.float32)
        weights[0, 0] = 1.0

        @tf.function
        def gradient(b: Any) -> Any:
            with tf.GradientTape() as tape:
                tape.watch(b)
                out = tf.reshape(model(b, training=False), (tf.shape(b)[0], -1))
                score = tf.reduce_sum(out * weights, axis=-1)
            return tape.gradient(score, b), score

        self.gradient_fn = gradient
        rng = np.random.default_rng(0)
        noise = rng.normal(0, 0.05, (batch_size, *x.shape[1:])).astype(np.float32)
        self.batch = np.clip(x[:1] + noise, 0, 1).astype(np.float32)

    def _calls(self, n: int) -> list[np.ndarray]:
        full, rest = divmod(n, self.batch_size)
        calls = [self.batch] * full
        if rest:
            calls.append(self.batch[:rest])
        return calls

    def forward(self, n: int) -> Timing:
        """Seconds for `n` evaluations as well-batched compiled calls."""
        calls = self._calls(n)
        for batch in {len(b): b for b in calls}.values():  # trace each size once
            self.forward_fn(tf.constant(batch)).numpy()

        def run() -> None:
            for batch in calls:
                self.forward_fn(tf.constant(batch)).numpy()

        return timed(run)

    def gradient(self, n: int) -> Timing:
        """Seconds for `n` compiled forward + backward passes, batched."""
        calls = self._calls(n)
        for batch in {len(b): b for b in calls}.values():
            self.gradient_fn(tf.constant(batch))[0].numpy()

        def run() -> None:
            for batch in calls:
                grads, scores = self.gradient_fn(tf.constant(batch))
                grads.numpy()
                scores.numpy()

        return timed(run)


class Seeds:
    """Fresh seeds, so no timed run reuses another's cached samples."""

    def __init__(self) -> None:
        self.next = 1000

    def __call__(self) -> int:
        self.next += 1
        return self.next


def attribute_timed(
    model: Any, x: np.ndarray, method: str, seed: int, **params: Any
) -> tuple[Timing, int]:
    """Wall and CPU seconds and evaluations of one ``ssx.attribute`` call."""
    result: list[int] = []

    def run() -> None:
        exp = ssx.attribute(model, x, method=method, target=0, seed=seed, **params)
        result.append(exp.n_evaluations)

    return timed(run), result[0]


@dataclass
class Ratio:
    """A method against its floor, from interleaved pairs of runs."""

    wall: float  # median over pairs of method wall time over floor wall time
    spread: tuple[float, float]  # the quartiles of those pair ratios
    cpu: float  # median over pairs of method CPU time over floor CPU time
    seconds: float  # the method's best wall time
    n: int  # its evaluations

    def text(self) -> str:
        low, high = self.spread
        return (
            f"{self.seconds:.3f} s, {self.wall:.2f}x [{low:.2f}-{high:.2f}] "
            f"({self.cpu:.2f}x cpu)"
        )


def against_floor(
    floor: Callable[[int], Timing],
    run: Callable[[int], tuple[Timing, int]],
    seeds: Seeds,
    repeats: int,
) -> Ratio:
    """Method runs and floor runs for its evaluations, in back-to-back pairs
    (which goes first alternates), after one warm-up run.

    The figure judged is the median over the pairs of method wall time over
    floor wall time: pairing cancels the load that drifts on a shared machine
    and the median drops the pairs a burst of other work hit; the quartiles
    show how far the pairs scatter. In brackets, the same median of process
    CPU times, which other work disturbs less (it counts single-threaded
    overhead once but TensorFlow's parallel work on every core, so it
    understates overhead when cores would otherwise idle).
    """
    _, n = run(seeds())
    method_walls, wall_ratios, cpu_ratios = [], [], []
    for index in range(repeats):
        if index % 2:
            (wall, cpu), n = run(seeds())
            base_wall, base_cpu = floor(n)
        else:
            base_wall, base_cpu = floor(n)
            (wall, cpu), n = run(seeds())
        method_walls.append(wall)
        wall_ratios.append(wall / base_wall)
        cpu_ratios.append(cpu / base_cpu)
    low, high = np.percentile(wall_ratios, [25, 75])
    return Ratio(
        float(np.median(wall_ratios)),
        (float(low), float(high)),
        float(np.median(cpu_ratios)),
        best(method_walls),
        n,
    )


# -- the sections ----------------------------------------------------------------


def perturbation_params(evaluations: int) -> dict[str, dict[str, Any]]:
    """Each perturbation method set to spend about `evaluations` evaluations,
    with its other parameters at their defaults (see each SPEC.defaults).

    Superpixel methods use the grid segmentation here, so the ratio measures
    the evaluation machinery, not scikit-image (timed on its own below).
    Occlusion's default window is 8 px with stride window // 2; a 4-px stride
    on a 64-px image is 15 × 15 = 225 windows, so the window and stride are
    chosen to give about `evaluations` windows.
    """
    return {
        "lime": {"n_samples": evaluations, "segmentation": "grid"},
        "rise": {"n_samples": evaluations},
        "kernel_shap": {"n_samples": evaluations, "segmentation": "grid"},
        "partition_shap": {"max_evals": evaluations},
        "occlusion": {},  # set per image size in `occlusion_params`
    }


def occlusion_params(size: int, evaluations: int) -> dict[str, Any]:
    """A window and stride giving about `evaluations` windows on a
    `size`-pixel square image (at least the default window of 8)."""
    per_side = max(2, round(math.sqrt(evaluations)))
    window = 8
    stride = max(1, math.ceil((size - window) / (per_side - 1)))
    return {"window": window, "stride": stride}


def bench_model(
    report: Report,
    label: str,
    model: Any,
    x: np.ndarray,
    evaluations: int,
    repeats: int,
    seeds: Seeds,
) -> None:
    """Every method against the floors, on one model and one image."""
    adapter = ssx.adapt(model)
    floors = Floors(model, x, adapter.batch_size)
    section = (
        f"{label}: input {x.shape[1:]}, batch {adapter.batch_size}, {adapter.device}"
    )
    per_eval = best([floors.forward(evaluations)[0] for _ in range(repeats)])
    report.add(
        section,
        "floor (forward)",
        f"{per_eval / evaluations * 1e3:.3f} ms/eval",
    )

    params = perturbation_params(evaluations)
    params["occlusion"] = occlusion_params(x.shape[1], evaluations)
    for method, settings in params.items():
        for kind, target in (("keras", model), ("predict", model.predict)):

            def run(
                seed: int,
                method: str = method,
                target: Any = target,
                settings: dict[str, Any] = settings,
            ) -> Any:
                return attribute_timed(target, x, method, seed, **settings)

            ratio = against_floor(floors.forward, run, seeds, repeats)
            report.add(
                section,
                f"{method} [{kind}] ({ratio.n} evals)",
                ratio.text(),
                "<= 1.10x floor",
                ratio.wall <= 1.10,
            )

    # as for the rows above, the floor makes as many evaluations as the
    # method did: integrated gradients' 65 points include x and the
    # baseline; SmoothGrad's f(x) rides as a 51st gradient row
    for method, settings in (
        ("integrated_gradients", {"n_steps": 64}),
        ("smoothgrad", {"n_samples": 50}),
    ):

        def run_gradients(
            seed: int, method: str = method, settings: dict[str, Any] = settings
        ) -> Any:
            return attribute_timed(model, x, method, seed, **settings)

        # a tenth of a second a run: three times the repeats cost little
        ratio = against_floor(floors.gradient, run_gradients, seeds, 3 * repeats)
        report.add(
            section,
            f"{method} ({ratio.n} evals)",
            ratio.text(),
            "<= 1.20x fwd+bwd",
            ratio.wall <= 1.20,
        )


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Swallow what Keras' ``predict`` and lime's progress bar print."""
    with contextlib.redirect_stdout(io.StringIO()):
        with contextlib.redirect_stderr(io.StringIO()):
            yield


def bench_users(
    report: Report, model: Any, x: np.ndarray, repeats: int, seeds: Seeds
) -> None:
    """ssx against lime_image and shap as their users call them."""
    from lime import lime_image

    section = "small CNN: against the libraries as users call them"
    image = x[0].astype(np.float64)

    def lime_user() -> None:
        explainer = lime_image.LimeImageExplainer()
        with quiet():
            explainer.explain_instance(image, model.predict, num_samples=EVALUATIONS)

    def ssx_lime() -> None:
        ssx.attribute(
            model.predict,
            x,
            method="lime",
            seed=seeds(),
            n_samples=EVALUATIONS,
            segmentation="quickshift",
        )

    ssx_lime()
    theirs, ours = [], []
    for _ in range(min(2, repeats)):
        theirs.append(timed(lime_user)[0])
        ours.append(timed(ssx_lime)[0])
    speedup = best(theirs) / best(ours)
    report.add(
        section,
        "lime_image(model.predict) / ssx lime",
        f"{best(theirs):.2f} s / {best(ours):.3f} s = {speedup:.1f}x",
        ">= 8x faster",
        speedup >= 8,
    )

    from ssxwidgets.segmentation import segment

    segment_times = [timed(lambda: segment(x[0], "quickshift", 50))[0]]
    segment_times += [timed(lambda: segment(x[0], "slic", 50))[0]]
    report.add(
        section,
        "  of which segmentation (quickshift, slic)",
        f"{segment_times[0]:.3f} s, {segment_times[1]:.3f} s",
    )

    import shap

    # shap's "blur(16,16)" masker needs OpenCV; a blurred copy of the image
    # as the fill is the same masking without it
    from ssxwidgets.methods.partition_shap import box_blur

    masker = shap.maskers.Image(box_blur(x[0], (16, 16)))

    def shap_user() -> None:
        explainer = shap.Explainer(model.predict, masker)
        with quiet():
            explainer(x[:1], max_evals=EVALUATIONS, outputs=[0], silent=True)

    def ssx_partition() -> None:
        ssx.attribute(
            model.predict,
            x,
            method="partition_shap",
            target=0,
            seed=seeds(),
            max_evals=EVALUATIONS,
        )

    ssx_partition()
    theirs, ours = [], []
    for _ in range(min(2, repeats)):
        theirs.append(timed(shap_user)[0])
        ours.append(timed(ssx_partition)[0])
    report.add(
        section,
        "shap Partition(model.predict) / ssx",
        f"{best(theirs):.2f} s / {best(ours):.3f} s = {best(theirs) / best(ours):.1f}x",
    )


def bench_incremental(report: Report, model: Any, x: np.ndarray) -> None:
    """New evaluations when n_samples rises 1,000 -> 2,000."""
    section = "small CNN: incremental sampling (1 image)"
    for method, name in (
        ("lime", "n_samples"),
        ("rise", "n_samples"),
        ("kernel_shap", "n_samples"),
        ("relax", "n_samples"),
        ("partition_shap", "max_evals"),
    ):
        adapter = ModelAdapter(model)
        extra: dict[str, Any] = {name: 1000}
        if method in ("lime", "kernel_shap"):
            extra["segmentation"] = "grid"
        ssx.attribute(adapter, x, method=method, target=0, **extra)
        before = adapter.n_evaluations
        extra[name] = 2000
        ssx.attribute(adapter, x, method=method, target=0, **extra)
        spent = adapter.n_evaluations - before
        report.add(
            section,
            f"{method}: {name} 1000 -> 2000",
            f"{spent} new evals",
            "<= 1050",
            spent <= 1050,
        )


def bench_memory(report: Report, model: Any, x: np.ndarray) -> None:
    """Peak Python (numpy) memory of a run at 4,000 and 16,000 samples.

    (Below a few thousand samples a run draws too few at a time to reach its
    largest working arrays, so smaller counts would show growth that stops.)
    """
    section = "small CNN: peak traced memory"
    for method in ("lime", "rise", "kernel_shap", "relax"):
        extra: dict[str, Any] = {}
        if method in ("lime", "kernel_shap"):
            extra["segmentation"] = "grid"
        peaks = []
        for n in (4000, 16000):
            adapter = ModelAdapter(model)
            tracemalloc.start()
            ssx.attribute(adapter, x, method=method, target=0, n_samples=n, **extra)
            peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
            tracemalloc.stop()
        growth = peaks[1] / peaks[0]
        report.add(
            section,
            f"{method}: peak at 4000 / 16000 samples",
            f"{peaks[0]:.1f} / {peaks[1]:.1f} MiB",
            "flat (< 1.5x)",
            growth < 1.5,
        )


def bench_convergence(
    report: Report, model: Any, images: np.ndarray, n_seeds: int
) -> None:
    """Samples until Spearman >= 0.9 against a 10,000-sample reference: ssx
    LIME against lime_image, same segmentation, fill and kernel.

    lime_image evaluates through the adapter's compiled path here (only its
    sample count matters); each method is compared with its own reference,
    and the median over images and seeds is reported.
    """
    from lime import lime_image
    from scipy.stats import spearmanr

    from ssxwidgets.segmentation import segment

    section = (
        f"small CNN: LIME samples to Spearman >= 0.9 vs a {REFERENCE_SAMPLES:,}-"
        f"sample reference ({len(images)} images x {n_seeds} seeds)"
    )
    adapter = ModelAdapter(model)

    def predict(batch: np.ndarray) -> np.ndarray:
        return adapter.predict(np.asarray(batch, np.float32))

    def ours(image: np.ndarray, segments: np.ndarray, n: int, seed: int) -> Any:
        exp = ssx.attribute(
            adapter,
            image[None],
            method="lime",
            target=0,
            n_samples=n,
            segmentation=segments,
            seed=seed,
        )
        assert exp.segment_values is not None
        return exp.segment_values[0]

    def theirs(image: np.ndarray, segments: np.ndarray, n: int, seed: int) -> Any:
        explainer = lime_image.LimeImageExplainer(random_state=seed)
        with quiet():
            result = explainer.explain_instance(
                image.astype(np.float64),
                predict,
                labels=(0,),
                top_labels=None,
                num_samples=n,
                segmentation_fn=lambda _: segments,
                num_features=10_000,
                batch_size=256,
            )
        values = np.zeros(segments.max() + 1)
        for feature, weight in result.local_exp[0]:
            values[feature] = weight
        return values

    labels = ("ssx lime", "lime_image")
    needed: dict[str, list[list[int]]] = {label: [] for label in labels}
    for index, image in enumerate(images):
        segments = segment(image, "slic", 50)
        for label, fn in zip(labels, (ours, theirs), strict=True):
            reference = fn(image, segments, REFERENCE_SAMPLES, 10_000 + index)
            counts = []
            for seed in range(n_seeds):
                found = 2 * CONVERGENCE_GRID[-1]
                for n in CONVERGENCE_GRID:
                    rho = spearmanr(fn(image, segments, n, seed), reference).statistic
                    if rho >= 0.9:
                        found = n
                        break
                counts.append(found)
            needed[label].append(counts)
    # per image, the median over seeds; ratios per image, then their
    # geometric mean (images differ in difficulty by more than the methods)
    medians = {label: np.median(needed[label], axis=1) for label in labels}
    ratios = medians["ssx lime"] / medians["lime_image"]
    for label in labels:
        report.add(
            section,
            f"{label}: median per image",
            ", ".join(f"{m:.0f}" for m in medians[label]),
        )
    mean_ratio = float(np.exp(np.mean(np.log(ratios))))
    report.add(
        section,
        "ssx / lime_image (geometric mean of images)",
        f"{mean_ratio:.2f} ({', '.join(f'{r:.2f}' for r in ratios)})",
        "<= 0.33",
        mean_ratio <= 1 / 3 + 1e-9,
    )
    report.notes.append(
        f"LIME samples to Spearman >= 0.9, per image and seed (> "
        f"{CONVERGENCE_GRID[-1]} shows as {2 * CONVERGENCE_GRID[-1]}): {needed}"
    )


# -- models ------------------------------------------------------------------------


def small_cnn() -> tuple[Any, str]:
    """The demo probe (its trained weights when shipped); a description."""
    try:
        from ssxwidgets import demo
        from ssxwidgets.demo.image_models import build_classifier, build_encoder
    except ImportError:
        return _stand_in_cnn(), "stand-in CNN"
    try:
        return demo.load_probe(), "demo probe (trained weights)"
    except Exception:  # weights not shipped yet: the same architecture
        model = build_classifier(build_encoder(seed=0), "shapes_probe")
        return model, "demo probe architecture (untrained weights)"


def _stand_in_cnn() -> Any:
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((64, 64, 3))
    h = keras.layers.Conv2D(32, 5, strides=2, activation="relu")(inputs)
    for filters in (64, 64, 128):
        h = keras.layers.Conv2D(filters, 3, strides=2, activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(6)(h))


def test_images(n: int) -> np.ndarray:
    """`(n, 64, 64, 3)` demo shapes images, or noise without the demo."""
    try:
        from ssxwidgets import demo

        return np.asarray(demo.shapes(n, seed=7).images, np.float32)
    except ImportError:
        rng = np.random.default_rng(0)
        return rng.random((n, 64, 64, 3), dtype=np.float32)


def machine() -> str:
    """CPU count, model and the load averages now."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return f"{os.cpu_count()} cores ({cpu}); load average {load}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument(
        "--quick", action="store_true", help="the small CNN only, no MobileNetV2"
    )
    parser.add_argument(
        "--repeats", type=int, default=30, help="timed pairs (method, floor) per row"
    )
    parser.add_argument(
        "--seeds", type=int, default=4, help="seeds per image for convergence"
    )
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run, of: {', '.join(SECTIONS)}",
    )
    args = parser.parse_args()
    only = set(args.only.split(","))
    report = Report()
    seeds = Seeds()
    started = time.perf_counter()
    print(f"ssxwidgets {ssx.__version__}, tensorflow {tf.__version__}, {machine()}")

    cnn, description = small_cnn()
    x64 = test_images(1)
    report.notes.append(f"small CNN: {description}, {cnn.count_params():,} params")
    if "speed" in only:
        bench_model(report, "small CNN", cnn, x64, EVALUATIONS, args.repeats, seeds)
    if "users" in only:
        bench_users(report, cnn, x64, args.repeats, seeds)
    if "incremental" in only:
        bench_incremental(report, cnn, x64)
    if "memory" in only:
        bench_memory(report, cnn, x64)
    if "convergence" in only:
        bench_convergence(report, cnn, test_images(4), args.seeds)
    if not args.quick and "mobilenet" in only:
        import keras

        mobilenet = keras.applications.MobileNetV2(
            weights=None, input_shape=(224, 224, 3), classifier_activation=None
        )
        x224 = np.random.default_rng(0).random((1, 224, 224, 3), dtype=np.float32)
        bench_model(
            report,
            "MobileNetV2",
            mobilenet,
            x224,
            EVALUATIONS_LARGE,
            max(3, args.repeats // 4),
            seeds,
        )
    report.notes.append(f"finished in {time.perf_counter() - started:.0f} s")
    report.notes.append(machine())
    print(report.render())


if __name__ == "__main__":
    main()
