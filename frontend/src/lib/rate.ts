// Iterations per second and ETA from a stream of (step, time) progress points, used when
// the server's own number (progress.it_s) is missing. Keeps a short sliding window so the rate follows
// changes (e.g. a job resumed on a faster device) without jumping on every update.

export interface RatePoint {
  step: number;
  t: number; // seconds
}

export class RateEstimator {
  private points: RatePoint[] = [];
  constructor(private windowS = 30) {}

  add(step: number, tSeconds: number): void {
    const last = this.points[this.points.length - 1];
    if (last && step < last.step) this.points = []; // restarted / resumed earlier
    if (last && step === last.step) return;
    this.points.push({ step, t: tSeconds });
    const cutoff = tSeconds - this.windowS;
    while (this.points.length > 2 && this.points[0].t < cutoff) this.points.shift();
  }

  /** iterations per second over the window, or null with too little data. */
  rate(): number | null {
    if (this.points.length < 2) return null;
    const a = this.points[0];
    const b = this.points[this.points.length - 1];
    const dt = b.t - a.t;
    return dt > 0 ? (b.step - a.step) / dt : null;
  }

  eta(total: number): number | null {
    const r = this.rate();
    const last = this.points[this.points.length - 1];
    if (!r || !last) return null;
    return Math.max(0, (total - last.step) / r);
  }
}
