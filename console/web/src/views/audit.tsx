// The auditor's view: refusals (denials and rejected commands), reads of personal data,
// and edits made by automations with their rationale; and, for any record, the events
// behind its values ("why is this value?").
import { useEffect, useState } from "preact/hooks";
import { Api } from "../api";
import { Alert } from "../problem";

type Row = Record<string, unknown>;
type Column = [key: string, title: string];

const LISTS: { path: string; title: string; columns: Column[] }[] = [
  { path: "/v1/audit/denials", title: "Denials", columns: [["denied_at", "When"], ["actor_id", "Who"], ["action", "Action"], ["target", "Target"], ["reason", "Reason"]] },
  { path: "/v1/audit/rejected-commands", title: "Rejected commands", columns: [["rejected_at", "When"], ["actor_id", "Who"], ["action", "Command"], ["target", "Target"], ["rule", "Rule"], ["reason", "Reason"]] },
  { path: "/v1/audit/personal-data-reads", title: "Personal-data reads", columns: [["read_at", "When"], ["actor_id", "Who"], ["target", "What"]] },
  { path: "/v1/audit/automated-edits", title: "Automated edits", columns: [["recorded_at", "When"], ["actor_id", "Automation"], ["event_type", "Event"], ["rationale", "Rationale"], ["policy_version", "Policy"]] },
];

const AGGREGATES = ["opportunity", "account", "contact", "lead", "activity", "delegation"];

export function Audit({ api }: { api: Api }) {
  const [list, setList] = useState(LISTS[0]);
  const [rows, setRows] = useState<Row[] | null>(null);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    setRows(null);
    api.query<Row[]>(`${list.path}?limit=50`).then((a) => setRows(a.data), setError);
  }, [api, list]);

  return (
    <section aria-labelledby="audit-title">
      <header class="view-header">
        <h1 id="audit-title">Audit</h1>
      </header>
      <Trace />
      {error !== null && <Alert error={error} onDismiss={() => setError(null)} />}
      <div role="tablist" aria-label="Audit lists" class="tabs">
        {LISTS.map((l) => (
          <button key={l.path} type="button" role="tab" aria-selected={l === list} onClick={() => setList(l)}>
            {l.title}
          </button>
        ))}
      </div>
      <div role="tabpanel" aria-label={list.title}>
        {rows?.length === 0 && <p>None.</p>}
        {rows && rows.length > 0 && (
          <table class="audit" data-testid="audit-list">
            <caption class="visually-hidden">{list.title}</caption>
            <thead>
              <tr>
                {list.columns.map(([, title]) => <th scope="col" key={title}>{title}</th>)}
                {list.path.endsWith("automated-edits") && <th scope="col">Record</th>}
              </tr>
            </thead>
            <tbody>
              {rows.map((row, i) => (
                <tr key={i}>
                  {list.columns.map(([key]) => <td key={key}>{text(row[key])}</td>)}
                  {list.path.endsWith("automated-edits") && (
                    <td><a href={`#/lineage/${row.aggregate_type}/${row.aggregate_id}`}>Why? The events of this {String(row.aggregate_type)}</a></td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
    </section>
  );
}

function text(value: unknown): string {
  if (value === null || value === undefined) return "—";
  if (typeof value === "string" && /^\d{4}-\d\d-\d\dT/.test(value)) return new Date(value).toLocaleString();
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** Any record's value, traced to the events that set it. */
function Trace() {
  const [aggregate, setAggregate] = useState("opportunity");
  const [id, setId] = useState("");
  const [field, setField] = useState("amount");
  return (
    <form
      class="inline"
      aria-label="Why is this value?"
      onSubmit={(e) => {
        e.preventDefault();
        location.hash = `#/lineage/${aggregate}/${id.trim()}${field.trim() ? `/${field.trim()}` : ""}`;
      }}
    >
      <label>
        Record
        <select value={aggregate} onChange={(e) => setAggregate((e.target as HTMLSelectElement).value)}>
          {AGGREGATES.map((a) => <option key={a}>{a}</option>)}
        </select>
      </label>
      <label>Id <input required size={38} value={id} onInput={(e) => setId((e.target as HTMLInputElement).value)} /></label>
      <label>Field (empty: all) <input value={field} onInput={(e) => setField((e.target as HTMLInputElement).value)} /></label>
      <button type="submit">Why is this value?</button>
    </form>
  );
}
