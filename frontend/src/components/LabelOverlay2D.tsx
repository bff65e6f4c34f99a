// A 2D image with its label mask drawn over it (one colour per class, opacity slider, legend):
// the 2D counterpart of VolumeViewer's overlay. Grey masks (one value per pixel) are read as
// class numbers; both files come through the authenticated fetch.
import { useEffect, useRef, useState } from "react";
import type { FileOut } from "../api/schema.gen";
import { apiFetch } from "../api/client";
import { classColor, classCss } from "../lib/labelColors";

async function bitmap(url: string): Promise<ImageBitmap> {
  const res = await apiFetch(url);
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return createImageBitmap(await res.blob(), { colorSpaceConversion: "none", premultiplyAlpha: "none" });
}

/** What the overlay reads of a file: a dataset file, or any image/mask pair the API serves. */
export type OverlayFile = Pick<FileOut, "url" | "path">;

export function LabelOverlay2D({ image, label, classes }: { image: OverlayFile; label: OverlayFile; classes: number[] }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const [layers, setLayers] = useState<{ image: ImageBitmap; mask: ImageData } | null>(null);
  const [opacity, setOpacity] = useState(0.5);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let alive = true;
    setLayers(null);
    setError(null);
    Promise.all([bitmap(image.url), bitmap(label.url)])
      .then(([img, lab]) => {
        const c = new OffscreenCanvas(lab.width, lab.height);
        const ctx = c.getContext("2d")!;
        ctx.drawImage(lab, 0, 0);
        const px = ctx.getImageData(0, 0, lab.width, lab.height);
        const out = new ImageData(lab.width, lab.height);
        for (let i = 0; i < px.data.length; i += 4) {
          const k = px.data[i]; // grey mask: the red channel holds the class number
          if (k === 0) continue;
          const [r, g, b] = classColor(k);
          out.data.set([r, g, b, 255], i);
        }
        if (alive) setLayers({ image: img, mask: out });
      })
      .catch((e: unknown) => alive && setError(e instanceof Error ? e.message : String(e)));
    return () => {
      alive = false;
    };
  }, [image.url, label.url]);

  useEffect(() => {
    const c = canvas.current;
    if (!c || !layers) return;
    c.width = layers.image.width;
    c.height = layers.image.height;
    const ctx = c.getContext("2d")!;
    ctx.globalAlpha = 1;
    ctx.drawImage(layers.image, 0, 0);
    const mask = new OffscreenCanvas(layers.mask.width, layers.mask.height);
    mask.getContext("2d")!.putImageData(layers.mask, 0, 0);
    ctx.globalAlpha = opacity;
    ctx.drawImage(mask, 0, 0, c.width, c.height);
  }, [layers, opacity]);

  return (
    <section className="viewer" aria-label="Image with label" data-state={error ? "error" : layers ? "loaded" : "loading"}>
      <div className="viewer-controls overlay-controls" role="group" aria-label="Label overlay">
        <label>
          Label opacity
          <input type="range" aria-label="Label opacity" min={0} max={1} step={0.05} value={opacity} onChange={(e) => setOpacity(Number(e.target.value))} />
        </label>
        <ul className="legend" aria-label="Legend">
          {classes
            .filter((k) => k !== 0)
            .map((k) => (
              <li key={k}>
                <span className="swatch" style={{ background: classCss(k) }} aria-hidden="true" />
                class {k}
              </li>
            ))}
        </ul>
      </div>
      {error ? (
        <div className="notice notice-error" role="alert">
          Could not display {label.path}: {error}
        </div>
      ) : (
        <canvas ref={canvas} className="overlay-2d" aria-label={`${image.path} with ${label.path}`} data-testid="overlay-2d-canvas" />
      )}
      <div className="muted small">
        {image.path} with {label.path}
      </div>
    </section>
  );
}
