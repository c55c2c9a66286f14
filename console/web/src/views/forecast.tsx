// The forecast by category, with a chart, and the KPIs a manager watches: approval
// turnaround, lead assignment latency and time to quote. A KPI the user's role may not
// read is left out.
import { Api, Problem } from "../api";
import { useAnswer } from "../answer";
import { show, totals, type Money } from "../money";
import { Alert } from "../problem";
import { StalenessBadge } from "../staleness";

type Figures = { amount: string; count: number; weighted: string };
type Row = { owner_id: string; period: string; currency: string; categories: Record<string, Figures>; total: Figures };
type Turnaround = { approver: string; team: string | null; approved: number; rejected: number; p50_seconds: number; p95_seconds: number; max_seconds: number };
type Latency = { teams: { team_id: string; assigned: number; p50_ms: number; p95_ms: number; max_ms: number }[]; waiting_for_an_owner: number };
type TimeToQuote = { team_id: string | null; quoted: number; p50_seconds: number; p95_seconds: number; max_seconds: number };

const CATEGORIES = [
  ["pipeline", "Pipeline"],
  ["best_case", "Best case"],
  ["commit", "Commit"],
  ["closed", "Closed"],
] as const;

/** A KPI, or nothing when the role may not read it. */
async function optional<T>(read: Promise<{ data: T }>): Promise<T | null> {
  try {
    return (await read).data;
  } catch (e) {
    if (e instanceof Problem && e.status === 403) return null;
    throw e;
  }
}

function duration(seconds: number): string {
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

export function Forecast({ api }: { api: Api }) {
  const { answer, updating, error, setError } = useAnswer(() => api.query<Row[]>("/v1/forecast"), [api]);
  const rows = answer?.data;
  const kpis = useAnswer(
    async () => {
      const [turnaround, latency, quoting] = await Promise.all([
        optional(api.query<Turnaround[]>("/v1/approvals/turnaround")),
        optional(api.query<Latency>("/v1/leads/assignment-latency")),
        optional(api.query<TimeToQuote[]>("/v1/quotes/time-to-quote")),
      ]);
      return { data: { turnaround, latency, quoting } };
    },
    [api],
  ).answer?.data;

  const currencies = [...new Set((rows ?? []).map((r) => r.currency))].sort();
  return (
    <section aria-labelledby="forecast-title">
      <header class="view-header">
        <h1 id="forecast-title">Forecast</h1>
        <StalenessBadge staleness={answer?.staleness} updating={updating} />
      </header>
      {error !== null && <Alert error={error} onDismiss={() => setError(null)} />}
      {rows?.length === 0 && <p>No open or won deals in your view.</p>}
      {currencies.map((currency) => (
        <Chart key={currency} currency={currency} rows={rows!.filter((r) => r.currency === currency)} />
      ))}
      {rows && rows.length > 0 && (
        <table class="forecast">
          <caption>By owner and quarter</caption>
          <thead>
            <tr>
              <th scope="col">Owner</th><th scope="col">Quarter</th>
              {CATEGORIES.map(([, title]) => <th scope="col" key={title}>{title}</th>)}
              <th scope="col">Weighted total</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={`${r.owner_id}-${r.period}-${r.currency}`} data-testid="forecast-row">
                <td>{r.owner_id}</td><td>{r.period}</td>
                {CATEGORIES.map(([key]) => (
                  <td key={key}>{r.categories[key] ? show({ value: r.categories[key].amount, currency: r.currency }) : "—"}</td>
                ))}
                <td>{show({ value: r.total.weighted, currency: r.currency })}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {kpis?.turnaround && (
        <table>
          <caption>Approval turnaround</caption>
          <thead><tr><th scope="col">Approver</th><th scope="col">Approved</th><th scope="col">Rejected</th><th scope="col">Median</th><th scope="col">95th percentile</th><th scope="col">Longest</th></tr></thead>
          <tbody>
            {kpis.turnaround.map((t) => (
              <tr key={`${t.approver}-${t.team}`}>
                <td>{t.approver}{t.team ? ` of team ${t.team}` : ""}</td><td>{t.approved}</td><td>{t.rejected}</td>
                <td>{duration(t.p50_seconds)}</td><td>{duration(t.p95_seconds)}</td><td>{duration(t.max_seconds)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {kpis?.latency && (
        <table>
          <caption>Lead assignment latency ({kpis.latency.waiting_for_an_owner} leads waiting for an owner)</caption>
          <thead><tr><th scope="col">Team</th><th scope="col">Assigned</th><th scope="col">Median</th><th scope="col">95th percentile</th><th scope="col">Longest</th></tr></thead>
          <tbody>
            {kpis.latency.teams.map((t) => (
              <tr key={t.team_id}><td>{t.team_id}</td><td>{t.assigned}</td><td>{duration(t.p50_ms / 1000)}</td><td>{duration(t.p95_ms / 1000)}</td><td>{duration(t.max_ms / 1000)}</td></tr>
            ))}
          </tbody>
        </table>
      )}
      {kpis?.quoting && (
        <table>
          <caption>Time to quote: from a deal's creation to its first submitted quote</caption>
          <thead><tr><th scope="col">Team</th><th scope="col">Deals quoted</th><th scope="col">Median</th><th scope="col">95th percentile</th><th scope="col">Longest</th></tr></thead>
          <tbody>
            {kpis.quoting.map((t) => (
              <tr key={t.team_id ?? "none"}><td>{t.team_id ?? "no team"}</td><td>{t.quoted}</td><td>{duration(t.p50_seconds)}</td><td>{duration(t.p95_seconds)}</td><td>{duration(t.max_seconds)}</td></tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** Amount and weighted amount per category, summed over the rows, as horizontal bars. */
function Chart({ currency, rows }: { currency: string; rows: Row[] }) {
  const sum = (key: string, part: "amount" | "weighted"): Money =>
    totals(rows.flatMap((r) => (r.categories[key] ? [{ value: r.categories[key][part], currency }] : [])))[0] ?? { value: "0", currency };
  const bars = CATEGORIES.map(([key, title]) => ({ title, amount: sum(key, "amount"), weighted: sum(key, "weighted") }));
  const most = Math.max(1, ...bars.map((b) => Number(b.amount.value)));
  const width = (m: Money) => `${(100 * Number(m.value)) / most}%`;
  return (
    <figure class="chart">
      <figcaption>Forecast by category, {currency} (bar: amount; dark part: weighted by probability)</figcaption>
      <ul>
        {bars.map((b) => (
          <li key={b.title} data-testid={`chart-${b.title}`}>
            <span class="chart-label">{b.title}</span>
            <span class="chart-bar" aria-hidden="true">
              <span class="amount" style={{ width: width(b.amount) }}>
                <span class="weighted" style={{ width: Number(b.amount.value) ? `${(100 * Number(b.weighted.value)) / Number(b.amount.value)}%` : "0" }} />
              </span>
            </span>
            <span class="chart-figures">{Number(b.amount.value) ? `${show(b.amount)} · weighted ${show(b.weighted)}` : "none"}</span>
          </li>
        ))}
      </ul>
    </figure>
  );
}
