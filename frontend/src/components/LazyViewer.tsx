// NiiVue is most of the bundle: load it only on pages that show a volume.
import { Suspense, lazy } from "react";
import type { VolumeViewerProps } from "./VolumeViewer";

const VolumeViewer = lazy(() => import("./VolumeViewer").then((m) => ({ default: m.VolumeViewer })));

export function LazyViewer(props: VolumeViewerProps) {
  return (
    <Suspense fallback={<div className="viewer viewer-loading muted">Loading the 3D viewer…</div>}>
      <VolumeViewer {...props} />
    </Suspense>
  );
}
