// NiiVue needs WebGL2; say so plainly instead of showing an empty box.
let cached: boolean | null = null;

export function hasWebGL2(): boolean {
  if (cached !== null) return cached;
  try {
    const c = document.createElement("canvas");
    cached = !!c.getContext("webgl2");
  } catch {
    cached = false;
  }
  return cached;
}
