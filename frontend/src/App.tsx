// Shell: navigation, API health, the login prompt, and the routes.
import { useState } from "react";
import { api } from "./api/endpoints";
import { LoginDialog } from "./components/LoginDialog";
import { capacityText } from "./lib/devices";
import { useLoad } from "./lib/hooks";
import { Link, matchPath, useLocation } from "./lib/router";
import { DatasetDetailPage } from "./pages/DatasetDetailPage";
import { DatasetsPage } from "./pages/DatasetsPage";
import { JobDetailPage } from "./pages/JobDetailPage";
import { JobsPage } from "./pages/JobsPage";
import { NewFinetunePage } from "./pages/NewFinetunePage";
import { NewJobPage } from "./pages/NewJobPage";
import { SampleJobPage } from "./pages/SampleJobPage";
import { SamplesPage } from "./pages/SamplesPage";

const NAV = [
  { to: "/datasets", label: "Datasets" },
  { to: "/jobs/new", label: "New job" },
  { to: "/jobs", label: "Jobs" },
  { to: "/samples", label: "Samples" },
];

function route(path: string) {
  let m;
  if (path === "/" || path === "/datasets") return <DatasetsPage />;
  if ((m = matchPath("/datasets/:id", path))) return <DatasetDetailPage key={m.id} id={Number(m.id)} />;
  if (path === "/jobs/new") return <NewJobPage />;
  if (path === "/jobs/finetune") return <NewFinetunePage />;
  if (path === "/jobs") return <JobsPage />;
  if ((m = matchPath("/jobs/:id", path))) return <JobDetailPage key={m.id} id={Number(m.id)} />;
  if (path === "/samples") return <SamplesPage />;
  if ((m = matchPath("/samples/:id", path))) return <SampleJobPage key={m.id} id={Number(m.id)} />;
  return (
    <div className="page">
      <h1>Not found</h1>
      <p>
        Nothing at <code>{path}</code>. <Link to="/datasets">Go to datasets</Link>.
      </p>
    </div>
  );
}

function HealthBadge() {
  const h = useLoad(() => api.health(), [], 10000);
  if (h.error) return <span className="health bad">API unreachable</span>;
  if (!h.data) return <span className="health">…</span>;
  const ok = h.data.status === "ok";
  const workers = h.data.workers;
  const live = h.data.live_workers ?? [];
  const each = live.map((w) => `${capacityText(w)} (${w.device})`).join("; ");
  return (
    <span className={`health ${ok ? "ok" : "bad"}`} title={`database ${h.data.database}, broker ${h.data.broker}${each ? `; ${each}` : ""}`}>
      {ok ? "online" : h.data.status} · {workers} worker{workers === 1 ? "" : "s"}
      {live.length > 0 && <span data-testid="worker-gpus"> ({live.map(capacityText).join(", ")})</span>}
    </span>
  );
}

export function App() {
  const { path } = useLocation();
  const [epoch, setEpoch] = useState(0); // remount pages after signing in so they reload
  const active = (to: string) => (to === "/jobs" ? path === "/jobs" || (path.startsWith("/jobs/") && path !== "/jobs/new") : path.startsWith(to) || (to === "/datasets" && path === "/"));
  return (
    <div className="app">
      <header className="topbar">
        <Link to="/datasets" className="brand">
          DDPM Studio
        </Link>
        <nav aria-label="Main">
          {NAV.map((n) => (
            <Link key={n.to} to={n.to} className={active(n.to) ? "active" : ""} aria-current={active(n.to) ? "page" : undefined}>
              {n.label}
            </Link>
          ))}
        </nav>
        <div className="spacer" />
        <HealthBadge key={epoch} />
      </header>
      <main key={epoch}>{route(path)}</main>
      <LoginDialog onLogin={() => setEpoch((e) => e + 1)} />
    </div>
  );
}
