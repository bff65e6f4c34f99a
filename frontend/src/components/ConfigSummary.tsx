// A job's stored config (train: the resolved config; sample: its parameters), collapsible.
export function ConfigSummary({ config }: { config: Record<string, unknown> | null | undefined }) {
  if (!config) return null;
  return (
    <details className="card log">
      <summary>Config</summary>
      <pre aria-label="Job config">{JSON.stringify(config, null, 2)}</pre>
    </details>
  );
}

/** "4 samples · ddim · 50 steps · seed 0" for a sample job's parameters. */
export function sampleParamsText(cfg: Record<string, unknown> | null | undefined): string {
  if (!cfg) return "";
  const parts: string[] = [];
  if (cfg.num_samples != null) parts.push(`${cfg.num_samples} sample${cfg.num_samples === 1 ? "" : "s"}`);
  if (cfg.sampler) parts.push(String(cfg.sampler));
  if (cfg.steps != null) parts.push(`${cfg.steps} steps`);
  if (cfg.seed != null) parts.push(`seed ${cfg.seed}`);
  return parts.join(" · ");
}
