// Which heatmap frames to draw: never one older than what is on screen.
//
// The kernel sends each frame's data, job id and version in one message and
// never sends an older job's frame after a newer job started; this is the
// second guard. A frame is dropped when its job is older than the newest
// job seen (in a frame or in `current_job`), or its version is older than
// the frame drawn.

export class FrameGate {
  private newestJob = 0;
  private drawnVersion = -1;

  /** The newest job seen so far. */
  get job(): number {
    return this.newestJob;
  }

  /** The version on screen (-1 before the first frame). */
  get version(): number {
    return this.drawnVersion;
  }

  /** Note that job `job` started (it makes older jobs' frames stale). */
  seeJob(job: number): void {
    if (job > this.newestJob) {
      this.newestJob = job;
    }
  }

  /** Whether a frame of `job` at `version` is to be drawn; if so it
   * becomes the frame on screen. */
  accept(job: number, version: number): boolean {
    if (job < this.newestJob || version < this.drawnVersion) {
      return false;
    }
    this.newestJob = job;
    this.drawnVersion = version;
    return true;
  }
}
