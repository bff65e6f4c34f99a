// The page's one NiiVue viewer: multiplanar / single-plane / 3D-render modes, colormap and
// contrast controls, and an optional label map drawn over the volume (one colour per class,
// opacity slider, legend). Drag-and-drop loading is off; every URL carries a `name` with its
// extension (NiiVue picks the reader by it) and the bearer token when one is set.
import { useEffect, useRef, useState } from "react";
import { Niivue } from "@niivue/niivue";
import { authHeaders } from "../api/auth";
import { classCss, labelColormap } from "../lib/labelColors";
import { hasWebGL2 } from "../lib/webgl";

export interface VolumeSource {
  url: string;
  name: string; // with extension: "sample-3.nii.gz"
  title?: string;
}

/** A label map on the volume's grid (a dataset's label, a model's prediction). */
export interface LabelOverlay extends VolumeSource {
  classes: number[]; // class numbers to show in the legend (0, background, is never drawn)
  classNames?: Record<number, string>; // legend text per class; default "class k"
}

export interface VolumeViewerProps {
  source: VolumeSource | null;
  overlay?: LabelOverlay | null;
  initialMode?: Mode;
  initialOpacity?: number; // of the overlay, 0..1
}

const MODES = [
  { id: "multiplanar", label: "Multiplanar" },
  { id: "render", label: "3D render" },
  { id: "axial", label: "Axial" },
  { id: "coronal", label: "Coronal" },
  { id: "sagittal", label: "Sagittal" },
] as const;
type Mode = (typeof MODES)[number]["id"];

const COLORMAPS = ["gray", "hot", "viridis", "plasma", "inferno", "winter", "cool", "bone"];

function sliceType(nv: Niivue, mode: Mode) {
  switch (mode) {
    case "render":
      return nv.sliceTypeRender;
    case "axial":
      return nv.sliceTypeAxial;
    case "coronal":
      return nv.sliceTypeCoronal;
    case "sagittal":
      return nv.sliceTypeSagittal;
    default:
      return nv.sliceTypeMultiplanar;
  }
}

export function VolumeViewer({ source, overlay = null, initialMode = "multiplanar", initialOpacity = 0.5 }: VolumeViewerProps) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const nvRef = useRef<Niivue | null>(null);
  const [webgl] = useState(hasWebGL2);
  const [ready, setReady] = useState(false);
  const [state, setState] = useState<"idle" | "loading" | "loaded" | "error">("idle");
  const [error, setError] = useState<string | null>(null);
  const [mode, setMode] = useState<Mode>(initialMode);
  const [colormap, setColormap] = useState("gray");
  const [range, setRange] = useState<{ min: number; max: number }>({ min: 0, max: 1 });
  const [window_, setWindow] = useState<{ lo: number; hi: number }>({ lo: 0, hi: 1 });
  const [opacity, setOpacity] = useState(initialOpacity);

  useEffect(() => {
    if (!webgl || !canvas.current) return;
    const nv = new Niivue({
      dragAndDropEnabled: false,
      backColor: [0.06, 0.07, 0.09, 1],
      show3Dcrosshair: true,
      crosshairWidth: 0.3, // in voxels: small sample volumes would get bars
      crosshairColor: [0.95, 0.3, 0.3, 0.35],
      isResizeCanvas: true,
      logLevel: "error",
      loadingText: "",
    });
    nvRef.current = nv;
    let alive = true;
    nv.attachToCanvas(canvas.current)
      .then(() => alive && setReady(true))
      .catch((e: unknown) => alive && (setState("error"), setError(String(e))));
    return () => {
      alive = false;
      try {
        nv.cleanup?.();
      } catch {
        /* the canvas is going away anyway */
      }
      nvRef.current = null;
    };
  }, [webgl]);

  useEffect(() => {
    const nv = nvRef.current;
    if (!ready || !nv || !source) return;
    let alive = true;
    setState("loading");
    setError(null);
    const volumes = [{ url: source.url, name: source.name, headers: authHeaders(), colormap }];
    if (overlay) volumes.push({ url: overlay.url, name: overlay.name, headers: authHeaders(), colormap: "gray" });
    nv.loadVolumes(volumes)
      .then(() => {
        if (!alive) return;
        const v = nv.volumes[0];
        if (!v) throw new Error("the file holds no volume");
        const label = nv.volumes[1];
        if (overlay) {
          if (!label) throw new Error(`${overlay.name} holds no label map`);
          label.setColormapLabel(labelColormap(overlay.classes, overlay.classNames));
          nv.setOpacity(1, opacity);
          nv.updateGLVolume();
        }
        const min = v.global_min ?? v.cal_min ?? 0;
        const max = v.global_max ?? v.cal_max ?? 1;
        setRange({ min, max: max > min ? max : min + 1 });
        setWindow({ lo: v.cal_min ?? min, hi: v.cal_max ?? max });
        nv.setSliceType(sliceType(nv, mode));
        setState("loaded");
      })
      .catch((e: unknown) => {
        if (!alive) return;
        setState("error");
        setError(e instanceof Error ? e.message : String(e));
      });
    return () => {
      alive = false;
    };
    // colormap/mode are applied by their own effects; reloading is only for a new source
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [ready, source?.url, source?.name, overlay?.url, overlay?.name]);

  useEffect(() => {
    const nv = nvRef.current;
    if (nv && ready) nv.setSliceType(sliceType(nv, mode));
  }, [mode, ready]);

  useEffect(() => {
    const nv = nvRef.current;
    const v = nv?.volumes[0];
    if (nv && v && state === "loaded") nv.setColormap(v.id, colormap);
  }, [colormap, state]);

  const applyOpacity = (value: number) => {
    setOpacity(value);
    const nv = nvRef.current;
    if (nv && nv.volumes[1] && state === "loaded") nv.setOpacity(1, value);
  };

  const applyWindow = (lo: number, hi: number) => {
    setWindow({ lo, hi });
    const nv = nvRef.current;
    const v = nv?.volumes[0];
    if (!nv || !v) return;
    v.cal_min = Math.min(lo, hi);
    v.cal_max = Math.max(lo, hi);
    nv.updateGLVolume();
  };

  if (!webgl) {
    return (
      <div className="viewer viewer-nogl" role="alert">
        The 3D viewer needs WebGL2, which this browser does not provide. Enable hardware acceleration or use a current
        Chrome, Firefox or Safari; files can still be downloaded.
      </div>
    );
  }

  const step = (range.max - range.min) / 200 || 0.01;
  return (
    <section className="viewer" aria-label="Volume viewer" data-state={state}>
      <div className="viewer-controls">
        <label>
          View
          <select aria-label="View mode" value={mode} onChange={(e) => setMode(e.target.value as Mode)}>
            {MODES.map((m) => (
              <option key={m.id} value={m.id}>
                {m.label}
              </option>
            ))}
          </select>
        </label>
        <label>
          Colormap
          <select aria-label="Colormap" value={colormap} onChange={(e) => setColormap(e.target.value)}>
            {COLORMAPS.map((c) => (
              <option key={c}>{c}</option>
            ))}
          </select>
        </label>
        <span className="contrast" role="group" aria-label="Contrast">
          Contrast
          <input type="range" aria-label="Contrast minimum" title="window minimum" min={range.min} max={range.max} step={step} value={window_.lo} disabled={state !== "loaded"} onChange={(e) => applyWindow(Number(e.target.value), window_.hi)} />
          <input type="range" aria-label="Contrast maximum" title="window maximum" min={range.min} max={range.max} step={step} value={window_.hi} disabled={state !== "loaded"} onChange={(e) => applyWindow(window_.lo, Number(e.target.value))} />
        </span>
      </div>
      <div className="viewer-canvas-box">
        <canvas ref={canvas} aria-label={source ? `NiiVue view of ${source.title ?? source.name}` : "NiiVue viewer"} data-testid="niivue-canvas" />
        {!source && <div className="viewer-overlay">Choose a file to view.</div>}
        {state === "loading" && <div className="viewer-overlay">Loading {source?.title ?? source?.name}…</div>}
        {state === "error" && (
          <div className="viewer-overlay error" role="alert">
            Could not display {source?.name}: {error}
          </div>
        )}
      </div>
      {overlay && (
        <div className="viewer-controls overlay-controls" role="group" aria-label="Label overlay">
          <label>
            Label opacity
            <input type="range" aria-label="Label opacity" min={0} max={1} step={0.05} value={opacity} disabled={state !== "loaded"} onChange={(e) => applyOpacity(Number(e.target.value))} />
          </label>
          <ul className="legend" aria-label="Legend">
            {overlay.classes
              .filter((k) => k !== 0)
              .map((k) => (
                <li key={k}>
                  <span className="swatch" style={{ background: classCss(k) }} aria-hidden="true" />
                  {overlay.classNames?.[k] ?? `class ${k}`}
                </li>
              ))}
          </ul>
        </div>
      )}
      {source && state === "loaded" && (
        <div className="muted small">
          Showing {source.title ?? source.name}
          {overlay && ` with ${overlay.title ?? overlay.name}`}
        </div>
      )}
    </section>
  );
}
