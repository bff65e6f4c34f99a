// One colour per label class, shared by the viewer's overlay and its legend (and any page
// that names a class), so a class looks the same everywhere. Class 0 is background: clear.

const PALETTE: Array<[number, number, number]> = [
  [230, 25, 75], // 1 red
  [60, 180, 75], // 2 green
  [0, 130, 200], // 3 blue
  [255, 225, 25], // 4 yellow
  [245, 130, 48], // 5 orange
  [145, 30, 180], // 6 purple
  [70, 240, 240], // 7 cyan
  [240, 50, 230], // 8 magenta
  [210, 245, 60], // 9 lime
  [170, 110, 40], // 10 brown
];

/** RGB of class ``k`` (k >= 1); the palette repeats past its end. */
export function classColor(k: number): [number, number, number] {
  return PALETTE[(((k - 1) % PALETTE.length) + PALETTE.length) % PALETTE.length];
}

export function classCss(k: number): string {
  const [r, g, b] = classColor(k);
  return `rgb(${r}, ${g}, ${b})`;
}

/** A NiiVue label colormap (R, G, B, A, I arrays) for the given class numbers. */
export function labelColormap(classes: number[], names?: Record<number, string>) {
  const ks = [...new Set([0, ...classes])].sort((a, b) => a - b);
  const max = ks[ks.length - 1];
  const R: number[] = [];
  const G: number[] = [];
  const B: number[] = [];
  const A: number[] = [];
  const I: number[] = [];
  const labels: string[] = [];
  for (let k = 0; k <= max; k++) {
    const [r, g, b] = k === 0 ? [0, 0, 0] : classColor(k);
    R.push(r);
    G.push(g);
    B.push(b);
    A.push(k === 0 ? 0 : 255);
    I.push(k);
    labels.push(names?.[k] ?? (k === 0 ? "background" : `class ${k}`));
  }
  return { R, G, B, A, I, labels };
}
