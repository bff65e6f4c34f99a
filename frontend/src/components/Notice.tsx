import type { ReactNode } from "react";

export function ErrorBox({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  const msg = error instanceof Error ? error.message : String(error);
  return (
    <div className="notice notice-error" role="alert">
      {title && <strong>{title}: </strong>}
      {msg}
    </div>
  );
}

export function Info({ children }: { children: ReactNode }) {
  return <div className="notice notice-info">{children}</div>;
}
