// @vitest-environment happy-dom
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import {
  buildControls,
  DEBOUNCE_MS,
  formatSetting,
  greyedNote,
  logPosition,
  logValue,
  niceRound,
} from "../src/controls";
import { FakeModel } from "./fakeModel";

describe("the log scale of Samples", () => {
  it("runs from 50 to 20,000", () => {
    expect(logValue(0, 50, 20000)).toBe(50);
    expect(logValue(1000, 50, 20000)).toBe(20000);
  });

  it("is logarithmic: the middle is the geometric mean", () => {
    expect(logValue(500, 50, 20000)).toBe(niceRound(Math.sqrt(50 * 20000)));
    expect(logPosition(1000, 50, 20000)).toBe(500);
  });

  it("rounds to two significant digits", () => {
    expect(niceRound(1234)).toBe(1200);
    expect(niceRound(55)).toBe(55);
    expect(niceRound(7.4)).toBe(7);
  });

  it("round-trips a value through its position", () => {
    for (const value of [50, 100, 1000, 4000, 20000]) {
      expect(logValue(logPosition(value, 50, 20000), 50, 20000)).toBe(value);
    }
  });

  it("clips values beyond its ends", () => {
    expect(logPosition(1e6, 50, 20000)).toBe(1000);
    expect(logPosition(1, 50, 20000)).toBe(0);
  });
});

describe("readouts and notes", () => {
  it("formats counts with separators and fractions shortly", () => {
    expect(formatSetting(20000)).toBe("20,000");
    expect(formatSetting(0.15)).toBe("0.15");
  });

  it("names each distinct reason a method is greyed out", () => {
    const note = greyedNote([
      { name: "a", title: "A", enabled: false, reason: "needs gradients" },
      { name: "b", title: "B", enabled: false, reason: "needs gradients" },
      { name: "c", title: "C", enabled: true, reason: "" },
    ]);
    expect(note).toBe("Greyed out: needs gradients.");
    expect(greyedNote([])).toBe("");
  });
});

describe("buildControls", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    document.body.innerHTML = "";
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function mount(model: FakeModel): HTMLElement {
    const controls = buildControls(model.asModel());
    for (const [event, handler] of controls.handlers) {
      model.on(event, handler);
    }
    controls.refresh();
    document.body.append(controls.root);
    return controls.root;
  }

  function byLabel(root: HTMLElement, text: string): HTMLElement {
    const label = [...root.querySelectorAll("label")].find(
      (l) => l.textContent === text,
    );
    const control = label ? root.querySelector(`#${label.htmlFor}`) : null;
    if (!(control instanceof HTMLElement)) {
      throw new Error(`no control labelled ${text}`);
    }
    return control;
  }

  it("labels every control and shows only the method's parameters", () => {
    const model = new FakeModel({ controls: ["n_samples", "seed"] });
    const root = mount(model);
    for (const text of ["Method", "Target", "Samples", "Seed"]) {
      expect(byLabel(root, text).closest(".ssx-field")?.hasAttribute("hidden"))
        .toBe(false);
    }
    for (const text of ["Steps", "Noise", "Segments", "Baseline"]) {
      expect(byLabel(root, text).closest<HTMLElement>(".ssx-field")?.hidden)
        .toBe(true);
    }
    model.set("controls", ["n_steps"]);
    expect(byLabel(root, "Steps").closest<HTMLElement>(".ssx-field")?.hidden)
      .toBe(false);
  });

  it("debounces a slider drag into one change for the kernel", () => {
    const model = new FakeModel({ controls: ["n_samples"] });
    const root = mount(model);
    const slider = byLabel(root, "Samples") as HTMLInputElement;
    for (const position of [100, 300, 600, 800]) {
      slider.value = String(position);
      slider.dispatchEvent(new Event("input"));
      vi.advanceTimersByTime(DEBOUNCE_MS / 3);
    }
    expect(model.saved).toBe(0);
    vi.advanceTimersByTime(DEBOUNCE_MS);
    expect(model.saved).toBe(1);
    expect(model.get("n_samples")).toBe(logValue(800, 50, 20000));
  });

  it("sends a released slider at once", () => {
    const model = new FakeModel({ controls: ["n_samples"] });
    const root = mount(model);
    const slider = byLabel(root, "Samples") as HTMLInputElement;
    slider.value = "1000";
    slider.dispatchEvent(new Event("input"));
    slider.dispatchEvent(new Event("change"));
    expect(model.saved).toBe(1);
    expect(model.get("n_samples")).toBe(20000);
  });

  it("greys out unavailable methods with their reason, as text", () => {
    const model = new FakeModel({
      method: "lime",
      method_options: [
        { name: "saliency", title: "<b>Saliency</b>", enabled: false,
          reason: "needs gradients" },
        { name: "lime", title: "LIME", enabled: true, reason: "" },
      ],
    });
    const root = mount(model);
    const select = byLabel(root, "Method") as HTMLSelectElement;
    expect(select.options[0]?.disabled).toBe(true);
    expect(select.options[0]?.title).toBe("needs gradients");
    expect(select.querySelector("b")).toBeNull();
    expect(root.querySelector(".ssx-note")?.textContent).toMatch(
      /needs gradients/,
    );
    expect(select.value).toBe("lime");
  });

  it("lists targets with their labels as text and sends a choice", () => {
    const model = new FakeModel({
      target: "top",
      target_options: [
        { value: "top", label: "Predicted class: <i>cat</i> (3.1)" },
        { value: "1", label: "1: dog · 0.2" },
      ],
    });
    const root = mount(model);
    const select = byLabel(root, "Target") as HTMLSelectElement;
    expect(select.options[0]?.textContent).toBe(
      "Predicted class: <i>cat</i> (3.1)",
    );
    expect(select.querySelector("i")).toBeNull();
    select.value = "1";
    select.dispatchEvent(new Event("change"));
    expect(model.get("target")).toBe("1");
    expect(model.saved).toBe(1);
  });

  it("shows a value set by the kernel", () => {
    const model = new FakeModel({ controls: ["n_samples"] });
    const root = mount(model);
    model.set("n_samples", 4000);
    const slider = byLabel(root, "Samples") as HTMLInputElement;
    expect(Number(slider.value)).toBe(logPosition(4000, 50, 20000));
    expect(slider.parentElement?.querySelector("output")?.textContent).toBe(
      "4,000",
    );
  });
});
