// A uPlot chart in a box: built when what shapes it changes, kept as wide as its box, fed the
// newest data on every render without a rebuild (and the box's data-points says how many points
// it has, for the browser tests), destroyed with the component. Every chart of the app uses it.
import { useEffect, useRef, type RefObject } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

// narrower than this, the axes' labels crowd the plot out
const MIN_WIDTH = 300;

/** `options(width)` builds the chart; it is called again only when an item of `rebuildOn` changes. */
export function useUplot(box: RefObject<HTMLDivElement | null>, options: (width: number) => uPlot.Options, data: uPlot.AlignedData, rebuildOn: unknown[]): void {
  const plot = useRef<uPlot | null>(null);
  const latest = useRef({ options, data });
  latest.current = { options, data };

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const width = () => Math.max(MIN_WIDTH, el.clientWidth);
    const p = new uPlot(latest.current.options(width()), latest.current.data, el);
    plot.current = p;
    const ro = new ResizeObserver(() => p.setSize({ width: width(), height: p.height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      p.destroy();
      plot.current = null;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, rebuildOn);

  useEffect(() => {
    plot.current?.setData(data);
    if (box.current) box.current.dataset.points = String(data[0].length);
  });
}
