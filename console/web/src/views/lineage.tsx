// "Why is this value?": the events that set a value of a record, read from the log itself,
// each with who and what sent it (actor, client, command, policy and code version, an
// automation's rationale), what it changed, where it sits in the log, and the read models
// it fed.
import { useEffect, useState } from "preact/hooks";
import { Api } from "../api";
import { show as money, type Money } from "../money";
import { Alert } from "../problem";

type Change = { from: unknown; to: unknown };
type Event = {
  event_type: string;
  event_id: string;
  aggregate_version: number;
  actor_id: string;
  actor_kind: string;
  client_id: string | null;
  command_id: string;
  correlation_id: string;
  causation_id: string | null;
  policy_version: string;
  code_version: string;
  rationale: string | null;
  recorded_at: string;
  topic: string;
  partition: number;
  offset: number;
  changed: Record<string, Change>;
  read_models: { projection: string; tables: string[] }[];
};
type Lineage = { aggregate_type: string; aggregate_id: string; field: string | null; value: unknown; version: number; chain: Event[] };

const isMoney = (v: unknown): v is Money => typeof v === "object" && v !== null && "value" in v && "currency" in v;
const show = (v: unknown) => (typeof v === "string" ? v : isMoney(v) ? money(v) : JSON.stringify(v));

export function LineageView({ api, aggregate, id, field }: { api: Api; aggregate: string; id: string; field?: string }) {
  const [lineage, setLineage] = useState<Lineage | null>(null);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    setLineage(null);
    setError(null);
    const query = field ? `?field=${encodeURIComponent(field)}` : "";
    api.query<Lineage>(`/v1/audit/lineage/${aggregate}/${id}${query}`).then((a) => setLineage(a.data), setError);
  }, [api, aggregate, id, field]);

  return (
    <section aria-labelledby="lineage-title">
      <header class="view-header">
        <h1 id="lineage-title">Why is this value?</h1>
        <span class="badge fresh" role="status">read from the log, to its end</span>
      </header>
      <p>
        {field ? `The ${field} of ` : "Every value of "}
        {aggregate} <code>{id}</code>
      </p>
      {error !== null && <Alert error={error} onDismiss={() => setError(null)} />}
      {lineage && (
        <>
          <p data-testid="lineage-value">
            {field ? <>The {field} is <strong>{show(lineage.value)}</strong></> : "The record"} at version {lineage.version}, set by {lineage.chain.length}{" "}
            {lineage.chain.length === 1 ? "event" : "events"}:
          </p>
          <ol class="lineage">
            {lineage.chain.map((e) => (
              <li key={e.event_id} data-testid="lineage-event">
                <h2>
                  {e.event_type} <span class="meta">(version {e.aggregate_version}, {new Date(e.recorded_at).toLocaleString()})</span>
                </h2>
                <dl>
                  <dt>By</dt><dd>{e.actor_id} ({e.actor_kind}) through {e.client_id ?? "an unnamed client"}</dd>
                  {e.rationale && (<><dt>Rationale</dt><dd>{e.rationale}</dd></>)}
                  <dt>Changed</dt>
                  <dd>
                    {Object.entries(e.changed).map(([name, c]) => (
                      <span key={name} class="change">{name}: {c.from === null ? "—" : show(c.from)} → {show(c.to)} </span>
                    ))}
                  </dd>
                  <dt>Command</dt><dd>{e.command_id} (correlation {e.correlation_id}{e.causation_id ? `, caused by ${e.causation_id}` : ""})</dd>
                  <dt>Policy and code</dt><dd>policy {e.policy_version}, code {e.code_version}</dd>
                  <dt>In the log</dt><dd>{e.topic}, partition {e.partition}, offset {e.offset}</dd>
                  <dt>Read models</dt><dd>{e.read_models.map((r) => `${r.projection} (${r.tables.join(", ")})`).join("; ")}</dd>
                </dl>
              </li>
            ))}
          </ol>
        </>
      )}
    </section>
  );
}
