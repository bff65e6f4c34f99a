// Shown when the API answers 401: asks for the API token and keeps it for the session.
import { useEffect, useState, type FormEvent } from "react";
import { clearAuthRequired, getToken, isAuthRequired, setToken, subscribeAuth } from "../api/auth";

export function LoginDialog({ onLogin }: { onLogin: () => void }) {
  const [open, setOpen] = useState(isAuthRequired());
  const [value, setValue] = useState("");
  const [hadToken, setHadToken] = useState(false);
  useEffect(
    () =>
      subscribeAuth(() => {
        setOpen(isAuthRequired());
        setHadToken(!!getToken());
      }),
    [],
  );
  if (!open) return null;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setToken(value.trim() || null);
    clearAuthRequired();
    setValue("");
    onLogin();
  };
  return (
    <div className="modal-backdrop">
      <form className="modal" role="dialog" aria-modal="true" aria-labelledby="login-title" onSubmit={submit}>
        <h2 id="login-title">Sign in</h2>
        <p>This server needs an API token (the <code>API_TOKEN</code> it was started with).</p>
        {hadToken && (
          <p className="field-error" role="alert">
            The token was refused.
          </p>
        )}
        <label htmlFor="login-token">API token</label>
        <input id="login-token" type="password" autoFocus autoComplete="current-password" value={value} onChange={(e) => setValue(e.target.value)} />
        <div className="row end">
          <button type="submit" className="primary">
            Sign in
          </button>
        </div>
      </form>
    </div>
  );
}
