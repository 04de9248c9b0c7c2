// The parameter controls: each with a visible label that is also its
// accessible name, shown only when the current method takes it. Slider
// drags are debounced before they reach the kernel; a release, a select or
// a typed number goes at once.

import type { AnyModel } from "@anywidget/types";

import { debounce, element, setText } from "./dom";
import type { ImageExplainerModel, MethodOption, Option } from "./types";

type Model = AnyModel<ImageExplainerModel>;

/** Milliseconds a slider must rest before its value goes to the kernel. */
export const DEBOUNCE_MS = 300;

/** Positions of a slider's track. */
const TRACK = 1000;

interface SliderSpec {
  kind: "slider";
  name: keyof ImageExplainerModel;
  label: string;
  min: number;
  max: number;
  log?: boolean;
  step?: number;
}

interface SelectSpec {
  kind: "select";
  name: keyof ImageExplainerModel;
  label: string;
  options: (model: Model) => Option[];
}

interface NumberSpec {
  kind: "number";
  name: keyof ImageExplainerModel;
  label: string;
}

type Spec = SliderSpec | SelectSpec | NumberSpec;

/** Every parameter control, in display order. */
export const PARAMETERS: readonly Spec[] = [
  {
    kind: "slider",
    name: "n_samples",
    label: "Samples",
    min: 50,
    max: 20000,
    log: true,
  },
  {
    kind: "slider",
    name: "n_segments",
    label: "Segments",
    min: 4,
    max: 400,
    log: true,
  },
  {
    kind: "select",
    name: "segmentation",
    label: "Segmentation",
    options: (m) =>
      (m.get("segmentation_options") ?? []).map((v) => ({
        value: v,
        label: v,
      })),
  },
  {
    kind: "slider",
    name: "n_steps",
    label: "Steps",
    min: 4,
    max: 512,
    log: true,
  },
  {
    kind: "select",
    name: "baseline",
    label: "Baseline",
    options: (m) => m.get("baseline_options") ?? [],
  },
  { kind: "slider", name: "noise", label: "Noise", min: 0, max: 1, step: 0.01 },
  {
    kind: "slider",
    name: "max_evals",
    label: "Max evaluations",
    min: 50,
    max: 20000,
    log: true,
  },
  { kind: "number", name: "seed", label: "Seed" },
];

/** `value` rounded to two significant digits (1234 → 1200, 55 → 55). */
export function niceRound(value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    return Math.round(value);
  }
  const magnitude = 10 ** Math.max(0, Math.floor(Math.log10(value)) - 1);
  return Math.round(value / magnitude) * magnitude;
}

/** The value at track position `position` (0–1000) of a log slider. */
export function logValue(position: number, min: number, max: number): number {
  const t = Math.min(1, Math.max(0, position / TRACK));
  return Math.min(max, Math.max(min, niceRound(min * (max / min) ** t)));
}

/** The track position (0–1000) of `value` on a log slider. */
export function logPosition(value: number, min: number, max: number): number {
  const clipped = Math.min(max, Math.max(min, value));
  return Math.round((Math.log(clipped / min) / Math.log(max / min)) * TRACK);
}

/** A number as the readout shows it: 1,200 or 0.15. */
export function formatSetting(value: number): string {
  return Number.isInteger(value)
    ? value.toLocaleString("en-US")
    : String(Number(value.toPrecision(3)));
}

let counter = 0;

/** A page-unique id for a control of one view. */
function uniqueId(name: string): string {
  counter += 1;
  return `ssx-${counter}-${name.replace(/_/g, "-")}`;
}

/** A labelled field: the label names the control for assistive tools. */
function field(
  name: string,
  label: string,
  control: HTMLElement,
): { box: HTMLElement; label: HTMLLabelElement } {
  const box = element("div", "ssx-field");
  box.dataset.control = name;
  const text = element("label", "ssx-label", label);
  control.id = uniqueId(name);
  text.htmlFor = control.id;
  box.append(text, control);
  return { box, label: text };
}

function fillSelect(select: HTMLSelectElement, options: Option[]): void {
  const current = select.value;
  select.replaceChildren(
    ...options.map((o) => {
      const option = element("option", "", o.label);
      option.value = o.value;
      return option;
    }),
  );
  select.value = current;
}

/** One built control and how to keep it in step with the model. */
interface Built {
  spec: Spec | { kind: "method" | "target"; name: string; label: string };
  box: HTMLElement;
  /** Show the model's value (unless the user is mid-change). */
  show: () => void;
  cleanup: () => void;
}

/** The controls block of one view. */
export interface Controls {
  root: HTMLElement;
  /** Re-read everything from the model. */
  refresh: () => void;
  /** The events the controls follow, and their handlers. */
  handlers: [string, () => void][];
  cleanup: () => void;
}

function buildSlider(model: Model, spec: SliderSpec): Built {
  const input = element("input", "ssx-slider");
  input.type = "range";
  if (spec.log) {
    input.min = "0";
    input.max = String(TRACK);
    input.step = "1";
  } else {
    input.min = String(spec.min);
    input.max = String(spec.max);
    input.step = String(spec.step ?? 1);
  }
  const { box } = field(spec.name, spec.label, input);
  const readout = element("output", "ssx-readout");
  readout.setAttribute("for", input.id);
  box.append(readout);

  const valueOf = (): number => {
    const raw = Number(input.value);
    return spec.log ? logValue(raw, spec.min, spec.max) : raw;
  };
  const send = debounce((value: number) => {
    model.set(spec.name, value as never);
    model.save_changes();
  }, DEBOUNCE_MS);
  let pending = false;
  const onInput = (): void => {
    pending = true;
    readout.textContent = formatSetting(valueOf());
    send.call(valueOf());
  };
  const onChange = (): void => {
    send.flush();
    pending = false;
  };
  input.addEventListener("input", onInput);
  input.addEventListener("change", onChange);
  const show = (): void => {
    const value = Number(model.get(spec.name) ?? 0);
    if (pending && send.waiting()) {
      return;
    }
    pending = false;
    input.value = String(
      spec.log ? logPosition(value, spec.min, spec.max) : value,
    );
    readout.textContent = formatSetting(value);
  };
  return {
    spec,
    box,
    show,
    cleanup: () => {
      send.cancel();
      input.removeEventListener("input", onInput);
      input.removeEventListener("change", onChange);
    },
  };
}

function buildSelect(
  model: Model,
  name: keyof ImageExplainerModel,
  label: string,
  options: () => Option[],
  spec: Built["spec"],
): Built & { select: HTMLSelectElement } {
  const select = element("select", "ssx-select");
  const { box } = field(String(name), label, select);
  const onChange = (): void => {
    model.set(name, select.value as never);
    model.save_changes();
  };
  select.addEventListener("change", onChange);
  const show = (): void => {
    fillSelect(select, options());
    select.value = String(model.get(name) ?? "");
  };
  return {
    spec,
    box,
    select,
    show,
    cleanup: () => select.removeEventListener("change", onChange),
  };
}

function buildNumber(model: Model, spec: NumberSpec): Built {
  const input = element("input", "ssx-number");
  input.type = "number";
  input.step = "1";
  input.min = "0";
  const { box } = field(spec.name, spec.label, input);
  const onChange = (): void => {
    const value = Math.trunc(Number(input.value));
    if (Number.isFinite(value) && value >= 0) {
      model.set(spec.name, value as never);
      model.save_changes();
    }
  };
  input.addEventListener("change", onChange);
  return {
    spec,
    box,
    show: () => {
      input.value = String(model.get(spec.name) ?? 0);
    },
    cleanup: () => input.removeEventListener("change", onChange),
  };
}

/** Text of the note under the Method control: why methods are greyed. */
export function greyedNote(options: MethodOption[]): string {
  const reasons = [
    ...new Set(options.filter((o) => !o.enabled).map((o) => o.reason)),
  ];
  return reasons.length > 0 ? `Greyed out: ${reasons.join("; ")}.` : "";
}

/** Build the Method, Target and parameter controls. */
export function buildControls(model: Model): Controls {
  const root = element("div", "ssx-controls-panel");

  const method = buildSelect(
    model,
    "method",
    "Method",
    () =>
      (model.get("method_options") ?? []).map((o) => ({
        value: o.name,
        label: o.enabled ? o.title : `${o.title} (unavailable)`,
      })),
    { kind: "method", name: "method", label: "Method" },
  );
  const note = element("p", "ssx-note");
  const showMethod = method.show;
  method.show = () => {
    showMethod();
    const options = model.get("method_options") ?? [];
    options.forEach((o, i) => {
      const option = method.select.options[i];
      if (option) {
        option.disabled = !o.enabled;
        option.title = o.reason;
      }
    });
    setText(note, greyedNote(options));
  };
  method.box.append(note);

  const target = buildSelect(
    model,
    "target",
    "Target",
    () => model.get("target_options") ?? [],
    { kind: "target", name: "target", label: "Target" },
  );

  const params: Built[] = PARAMETERS.map((spec) => {
    if (spec.kind === "slider") {
      return buildSlider(model, spec);
    }
    if (spec.kind === "select") {
      return buildSelect(
        model,
        spec.name,
        spec.label,
        () => spec.options(model),
        spec,
      );
    }
    return buildNumber(model, spec);
  });
  const all = [method, target, ...params];
  root.append(...all.map((b) => b.box));

  const showShown = (): void => {
    const shown = new Set(model.get("controls") ?? []);
    for (const built of params) {
      built.box.hidden = !shown.has(String(built.spec.name));
    }
  };
  const refresh = (): void => {
    for (const built of all) {
      built.show();
    }
    showShown();
  };

  const handlers: [string, () => void][] = [
    ["change:method", method.show],
    ["change:method_options", method.show],
    ["change:target", target.show],
    ["change:target_options", target.show],
    ["change:controls", showShown],
  ];
  for (const built of params) {
    handlers.push([`change:${String(built.spec.name)}`, built.show]);
  }
  for (const extra of ["segmentation_options", "baseline_options"]) {
    const built = params.find(
      (b) => `${String(b.spec.name)}_options` === extra,
    );
    if (built) {
      handlers.push([`change:${extra}`, built.show]);
    }
  }

  return {
    root,
    refresh,
    handlers,
    cleanup: () => {
      for (const built of all) {
        built.cleanup();
      }
    },
  };
}
