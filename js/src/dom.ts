// Small DOM helpers. Text always goes in through textContent, so nothing a
// user or a model names is ever parsed as HTML.

/** A new element with a class and, optionally, plain text. */
export function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text?: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/** Set an element's text (never markup) and hide it when empty. */
export function setText(node: HTMLElement, text: string): void {
  node.textContent = text;
  node.hidden = text === "";
}

/** A short, readable form of a colour-bar end value. */
export function formatValue(value: number): string {
  if (!Number.isFinite(value)) {
    return String(value);
  }
  if (value === 0) {
    return "0";
  }
  const magnitude = Math.abs(value);
  if (magnitude >= 1e4 || magnitude < 1e-3) {
    return value.toExponential(2);
  }
  return String(Number(value.toPrecision(3)));
}

/** The message of anything thrown. */
export function describe(error: unknown): string {
  if (error instanceof Error) {
    return `${error.name}: ${error.message}`;
  }
  return String(error);
}

/** A debounced call: `call` (re)starts the wait, `flush` runs a waiting
 * call now, `cancel` drops it, `waiting` says whether one waits. */
export interface Debounced<A extends unknown[]> {
  call: (...args: A) => void;
  flush: () => void;
  cancel: () => void;
  waiting: () => boolean;
}

/** `fn` called once calls stop for `ms`, with the latest arguments. */
export function debounce<A extends unknown[]>(
  fn: (...args: A) => void,
  ms: number,
): Debounced<A> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let latest: A | undefined;
  const run = (): void => {
    timer = undefined;
    const args = latest;
    latest = undefined;
    if (args !== undefined) {
      fn(...args);
    }
  };
  return {
    call: (...args: A) => {
      latest = args;
      clearTimeout(timer);
      timer = setTimeout(run, ms);
    },
    flush: () => {
      if (timer !== undefined) {
        clearTimeout(timer);
        run();
      }
    },
    cancel: () => {
      clearTimeout(timer);
      timer = undefined;
      latest = undefined;
    },
    waiting: () => timer !== undefined,
  };
}
