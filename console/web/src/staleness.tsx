// The badge on every view: how old the answer may be, whether it meets its bound, and
// "updating…" while a read waits for the user's own latest write.
import type { Staleness } from "./api";

function age(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  return `${Math.round(ms / 60_000)} min`;
}

export function StalenessBadge({ staleness, updating }: { staleness?: Staleness; updating: boolean }) {
  if (updating) {
    return (
      <span class="badge updating" role="status" data-testid="staleness">
        updating…
      </span>
    );
  }
  if (!staleness) return null;
  const behind =
    staleness.lag_events === 0
      ? "up to date"
      : `${staleness.lag_events} events behind${staleness.lag_ms === null ? "" : `, ${age(staleness.lag_ms)} old`}`;
  const verdict = staleness.fresh ? "within bound" : "stale";
  const why = staleness.unmet?.length ? ` (${staleness.unmet.join("; ")})` : "";
  const read = new Date(staleness.read_at).toLocaleTimeString();
  return (
    <span
      class={`badge ${staleness.fresh ? "fresh" : "stale"}`}
      role="status"
      data-testid="staleness"
      title={`${staleness.projection}: read at ${read}${why}`}
    >
      {verdict} · {behind}
    </span>
  );
}
