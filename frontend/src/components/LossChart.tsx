// Live loss chart (uPlot). The chart is created once and fed with setData as metrics arrive.
import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { MetricRow } from "../api/types";

export function chartSeries(rows: MetricRow[], key = "loss"): [number[], number[]] {
  const byStep = new Map<number, number>();
  for (const r of rows) {
    const v = r[key];
    if (typeof r.step === "number" && typeof v === "number" && Number.isFinite(v)) byStep.set(r.step, v);
  }
  const steps = [...byStep.keys()].sort((a, b) => a - b);
  return [steps, steps.map((s) => byStep.get(s) as number)];
}

export function LossChart({ rows, height = 260 }: { rows: MetricRow[]; height?: number }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const data = chartSeries(rows);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const opts: uPlot.Options = {
      width: Math.max(300, el.clientWidth),
      height,
      scales: { x: { time: false } },
      axes: [{ label: "step" }, { label: "loss", size: 60 }],
      series: [{ label: "step" }, { label: "loss", stroke: "#2563eb", width: 2, points: { show: false } }],
      legend: { show: true },
    };
    plot.current = new uPlot(opts, [[], []], el);
    const ro = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(300, el.clientWidth), height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [height]);

  useEffect(() => {
    plot.current?.setData(data);
    if (box.current) box.current.dataset.points = String(data[0].length);
  });

  return (
    <figure className="chart" aria-label="Loss chart">
      <div ref={box} className="chart-box" data-testid="loss-chart" />
      {data[0].length === 0 && <figcaption className="muted">No loss values yet.</figcaption>}
    </figure>
  );
}
