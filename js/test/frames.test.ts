import { describe, expect, it } from "vitest";

import { FrameGate } from "../src/frames";

describe("FrameGate", () => {
  it("draws frames in order and drops an older version", () => {
    const gate = new FrameGate();
    expect(gate.accept(1, 1)).toBe(true);
    expect(gate.accept(1, 3)).toBe(true);
    expect(gate.accept(1, 2)).toBe(false);
    expect(gate.version).toBe(3);
  });

  it("drops a frame of a job older than the newest job seen", () => {
    const gate = new FrameGate();
    expect(gate.accept(1, 5)).toBe(true);
    gate.seeJob(2);
    // job 1 computed this frame before job 2 started: stale
    expect(gate.accept(1, 6)).toBe(false);
    expect(gate.accept(2, 7)).toBe(true);
    expect(gate.accept(1, 8)).toBe(false);
    expect(gate.job).toBe(2);
  });

  it("redraws the frame on screen (same version) for a colour change", () => {
    const gate = new FrameGate();
    gate.accept(3, 4);
    expect(gate.accept(3, 4)).toBe(true);
  });

  it("never moves back to an older job when told of one", () => {
    const gate = new FrameGate();
    gate.seeJob(5);
    gate.seeJob(3);
    expect(gate.job).toBe(5);
  });
});
