// The header's word on the connection: online or offline, how many changes wait to be
// synced, and what the last sync did with them. Syncing starts by itself when the browser
// is back online (and at sign-in, for changes left from before).
import { useEffect, useState } from "preact/hooks";
import type { Api } from "./api";
import { CHANGED, lastReport, online, pending, sync, type SyncReport } from "./offline";
import { describe } from "./problem";

const OUTCOME = { applied: "applied", merged: "merged", needs_review: "needs review", refused: "refused" } as const;

export function Connection({ api }: { api: Api }) {
  const [isOnline, setOnline] = useState(online());
  const [waiting, setWaiting] = useState(0);
  const [report, setReport] = useState<SyncReport | null>(lastReport());
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    const count = () => void pending(api.session.user).then((p) => setWaiting(p.length));
    const send = () => {
      if (!online()) return;
      setError(null);
      // Its end announces CHANGED, which brings the report in.
      sync(api).catch(setError);
    };
    const up = () => { setOnline(true); send(); };
    const down = () => setOnline(false);
    const changed = () => { count(); setReport(lastReport()); };
    addEventListener("online", up);
    addEventListener("offline", down);
    addEventListener(CHANGED, changed);
    count();
    send();
    return () => {
      removeEventListener("online", up);
      removeEventListener("offline", down);
      removeEventListener(CHANGED, changed);
    };
  }, [api]);

  const tally = report && Object.entries(OUTCOME)
    .map(([key, name]) => [name, report.results.filter((r) => r.outcome === key).length] as const)
    .filter(([, n]) => n > 0)
    .map(([name, n]) => `${n} ${name}`)
    .join(", ");
  return (
    <div class="connection">
      <span class={`badge ${isOnline ? "fresh" : "stale"}`} role="status" data-testid="connection">
        {isOnline ? "online" : "offline"}
        {waiting > 0 && ` · ${waiting} pending`}
      </span>
      {error !== null && <span class="error" role="alert">Sync failed: {describe(error)}</span>}
      {report && (
        <details class="sync-report" data-testid="sync-report">
          <summary>Synced: {tally}</summary>
          <ul>
            {report.results.map((r) => (
              <li key={r.idempotency_key} data-outcome={r.outcome}>
                {r.label}: <strong>{OUTCOME[r.outcome]}</strong>
                {r.how ? ` (${r.how})` : ""}
                {r.problem ? ` (${r.problem.title}: ${r.problem.detail})` : ""}
                {r.review_id && <> · <a href="#/reviews">review it</a></>}
              </li>
            ))}
          </ul>
        </details>
      )}
    </div>
  );
}
