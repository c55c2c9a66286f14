// One opportunity: its details, its quotes (lines, exact totals, the approval chain and who
// decided what and when) with the commands each quote's state allows, and its timeline.
import { useEffect, useState } from "preact/hooks";
import { Api, Problem } from "../api";
import { CHANGED, online, pending, record, type IntentCommand } from "../offline";
import { useAnswer } from "../answer";
import { show, type Money } from "../money";
import { Alert } from "../problem";
import { StalenessBadge } from "../staleness";
import { QuoteEditor, type Line } from "./quote-editor";

type Step = { approver: string; team: string | null };
type Decision = {
  revision: number;
  step: number;
  approver: string;
  team: string | null;
  decision: string;
  decided_by: string;
  on_behalf_of: string | null;
  comment: string | null;
  requested_at: string;
  decided_at: string;
};
type Quote = {
  id: string;
  revision: number;
  currency: string;
  lines: Line[];
  valid_until: string;
  totals: { list: string; discount: string; net: string; discount_percent: string };
  status: string;
  submitted_by: string | null;
  chain: Step[];
  approved_steps: number;
  waiting_since: string | null;
  history: Decision[];
  decline_reason: string | null;
};
type Activity = { id: string; kind: string; subject: string; due_date: string | null; done: boolean; overdue: boolean; logged_by: string; logged_at: string; occurred_at: string | null };
export type OpportunityDetail = {
  id: string;
  name: string;
  account_id: string;
  owner_id: string;
  team_id: string | null;
  amount: Money;
  close_date: string;
  stage: string;
  probability: number;
  status: string;
  close_reason: string | null;
  next_step: string | null;
  description: string | null;
  version: number;
  quotes: Quote[];
  activities: Activity[];
};

/** The states of a quote whose revision was approved, and so has a document. */
const HAS_DOCUMENT = ["approved", "accepted", "declined"];

const when = (t: string | null) => (t ? new Date(t).toLocaleString() : "—");
const stepName = (s: Step) => (s.approver === "manager" ? `manager${s.team ? ` of team ${s.team}` : ""}` : s.approver);

export function OpportunityPage({ api, id }: { api: Api; id: string }) {
  const { answer, updating, error, setError, reload: load, act: send } = useAnswer(() => api.query<OpportunityDetail>(`/v1/opportunities/${id}`), [api, id]);
  const deal = answer?.data;
  const [editing, setEditing] = useState<Quote | "new" | null>(null);
  const [waiting, setWaiting] = useState<{ idempotency_key: string; label: string }[]>([]);

  // Changes kept offline for this deal; after a sync the deal is read again.
  useEffect(() => {
    const changed = () => {
      void pending(api.session.user).then((p) => setWaiting(p.filter((i) => i.opportunity_id === id)));
      if (online()) void load();
    };
    void pending(api.session.user).then((p) => setWaiting(p.filter((i) => i.opportunity_id === id)));
    addEventListener(CHANGED, changed);
    return () => removeEventListener(CHANGED, changed);
  }, [api, id, load]);

  const act = (quote: Quote, action: string, body: unknown = {}) =>
    send(
      () => api.command(`/v1/opportunities/${id}/quotes/${quote.id}/${action}`, body, deal!.version),
      (e) => setError(e instanceof Problem && e.status === 409 ? new Problem(409, "The deal changed since you loaded it", "reload the page and try again", {}) : e),
    );

  // A saved file, not a new tab: the API wants the bearer token, which a plain link lacks.
  const download = (quote: Quote) =>
    send(async () => {
      const url = URL.createObjectURL(await api.document(quote.id));
      const link = Object.assign(document.createElement("a"), { href: url, download: `quote-${quote.id}.pdf` });
      link.click();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    });

  if (!deal) {
    return (
      <section aria-labelledby="deal-title">
        <h1 id="deal-title">Opportunity</h1>
        {error !== null ? <Alert error={error} onDismiss={() => setError(null)} /> : <p>Loading…</p>}
      </section>
    );
  }
  const mayTrace = api.session.roles.includes("auditor");
  const why = (field: string) =>
    mayTrace ? <a class="why" href={`#/lineage/opportunity/${deal.id}/${field}`}>Why is this value?</a> : null;
  return (
    <section aria-labelledby="deal-title">
      <header class="view-header">
        <h1 id="deal-title">{deal.name}</h1>
        <StalenessBadge staleness={answer?.staleness} updating={updating} />
      </header>
      {error !== null && <Alert error={error} onDismiss={() => setError(null)} />}
      <dl class="details">
        <dt>Amount</dt><dd data-testid="deal-amount">{show(deal.amount)} {why("amount")}</dd>
        <dt>Stage</dt><dd data-testid="deal-stage">{deal.stage} ({deal.probability}%) {why("stage")}</dd>
        <dt>Status</dt><dd data-testid="deal-status">{deal.status}{deal.close_reason ? `: ${deal.close_reason}` : ""}</dd>
        <dt>Closes</dt><dd data-testid="deal-close-date">{deal.close_date} {why("close_date")}</dd>
        <dt>Next step</dt><dd data-testid="deal-next-step">{deal.next_step ?? "—"}</dd>
        <dt>Description</dt><dd data-testid="deal-description">{deal.description ?? "—"}</dd>
        <dt>Owner</dt><dd>{deal.owner_id}{deal.team_id ? ` (team ${deal.team_id})` : ""}</dd>
        <dt>Version</dt><dd>{deal.version}</dd>
      </dl>

      {deal.status === "open" && <DetailsEditor api={api} deal={deal} send={send} />}
      {waiting.length > 0 && (
        <section aria-labelledby="pending-title">
          <h2 id="pending-title">Waiting to sync</h2>
          <ul class="pending">
            {waiting.map((w) => <li key={w.idempotency_key} data-testid="pending">{w.label}</li>)}
          </ul>
        </section>
      )}

      <h2>Quotes</h2>
      {deal.status === "open" && editing === null && (
        <button type="button" onClick={() => setEditing("new")}>New quote</button>
      )}
      {editing !== null && (
        <QuoteEditor
          api={api}
          opportunity={deal}
          quote={editing === "new" ? undefined : editing}
          onSaved={() => { setEditing(null); void load(); }}
          onCancel={() => setEditing(null)}
        />
      )}
      {deal.quotes.length === 0 && <p>No quotes yet.</p>}
      {deal.quotes.map((q) => (
        <article class="quote" key={q.id} aria-label={`Quote revision ${q.revision}`} data-testid="quote">
          <h3>
            Quote, revision {q.revision}: <span data-testid="quote-status">{q.status.replace("_", " ")}</span>
          </h3>
          <table>
            <caption class="visually-hidden">Lines</caption>
            <thead><tr><th scope="col">Product</th><th scope="col">Quantity</th><th scope="col">Unit price</th><th scope="col">Discount</th></tr></thead>
            <tbody>
              {q.lines.map((l, i) => (
                <tr key={i}><td>{l.product}</td><td>{l.quantity}</td><td>{show({ value: l.unit_price, currency: q.currency })}</td><td>{l.discount_percent}%</td></tr>
              ))}
            </tbody>
          </table>
          <p class="quote-totals">
            List {show({ value: q.totals.list, currency: q.currency })} · discount {show({ value: q.totals.discount, currency: q.currency })} ({q.totals.discount_percent}%) ·
            net <strong data-testid="quote-net">{show({ value: q.totals.net, currency: q.currency })}</strong> · valid until {q.valid_until}
          </p>
          {q.chain.length > 0 && (
            <ol class="chain" aria-label="Approval chain">
              {q.chain.map((s, i) => (
                <li key={i} class={i < q.approved_steps ? "done" : i === q.approved_steps && q.status === "pending_approval" ? "waiting" : ""}>
                  {stepName(s)}: {i < q.approved_steps ? "approved" : i === q.approved_steps && q.status === "pending_approval" ? `waiting since ${when(q.waiting_since)}` : "not yet"}
                </li>
              ))}
            </ol>
          )}
          {q.history.length > 0 && (
            <table class="history">
              <caption>Decisions</caption>
              <thead><tr><th scope="col">Revision</th><th scope="col">Step</th><th scope="col">Decided by</th><th scope="col">Decision</th><th scope="col">Comment</th><th scope="col">Requested</th><th scope="col">Decided</th></tr></thead>
              <tbody>
                {q.history.map((d) => (
                  <tr key={`${d.revision}-${d.step}`}>
                    <td>{d.revision}</td>
                    <td>{d.step}: {stepName(d)}</td>
                    <td>{d.decided_by}{d.on_behalf_of ? ` on behalf of ${d.on_behalf_of}` : ""}</td>
                    <td>{d.decision}</td>
                    <td>{d.comment ?? ""}</td>
                    <td>{when(d.requested_at)}</td>
                    <td>{when(d.decided_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {q.decline_reason && <p>Declined: {q.decline_reason}</p>}
          <div class="actions">
            {q.status === "draft" && <button type="button" onClick={() => act(q, "submit")}>Submit for approval</button>}
            {(q.status === "draft" || q.status === "rejected") && <button type="button" onClick={() => setEditing(q)}>Revise</button>}
            {q.status === "pending_approval" && <button type="button" onClick={() => act(q, "recall")}>Recall</button>}
            {q.status === "approved" && <button type="button" onClick={() => act(q, "accept")}>Customer accepted</button>}
            {q.status === "approved" && <DeclineButton onDecline={(reason) => act(q, "decline", { reason })} />}
            {HAS_DOCUMENT.includes(q.status) && <button type="button" onClick={() => download(q)}>Download the PDF</button>}
          </div>
        </article>
      ))}

      <h2>Timeline</h2>
      {deal.activities.length === 0 ? (
        <p>No activities yet.</p>
      ) : (
        <ul class="timeline">
          {deal.activities.map((a) => (
            <li key={a.id}>
              <strong>{a.kind}</strong> {a.subject} · {a.kind === "task" ? `due ${a.due_date ?? "—"}${a.done ? ", done" : a.overdue ? ", overdue" : ""}` : when(a.occurred_at ?? a.logged_at)} · {a.logged_by}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

const OPEN_STAGES = ["Prospecting", "Qualification", "Proposal", "Negotiation"];

/** The deal's details, edited together: online each change is a command; offline each is
 *  an intent, based on the version shown, synced when the connection returns. */
function DetailsEditor({ api, deal, send }: { api: Api; deal: OpportunityDetail; send: (work: () => Promise<unknown>) => Promise<boolean> }) {
  const [open, setOpen] = useState(false);
  const [form, setForm] = useState({ next_step: "", description: "", close_date: "", amount: "", stage: "" });
  const [failed, setFailed] = useState<unknown>(null);
  const field = (name: keyof typeof form, label: string, props: Record<string, unknown> = {}) => (
    <label>
      {label} <input {...props} value={form[name]} onInput={(e) => setForm({ ...form, [name]: (e.target as HTMLInputElement).value })} />
    </label>
  );
  if (!open) {
    const start = () => {
      setForm({ next_step: deal.next_step ?? "", description: deal.description ?? "", close_date: deal.close_date, amount: deal.amount.value, stage: deal.stage });
      setOpen(true);
    };
    return <button type="button" onClick={start}>Edit details</button>;
  }
  const text = (v: string) => (v.trim() === "" ? null : v.trim());
  const changes: { command: IntentCommand; label: string; path: string; body: unknown }[] = [];
  for (const [name, label] of [["next_step", "Next step"], ["description", "Description"], ["close_date", "Close date"]] as const) {
    if (text(form[name]) !== (deal[name] ?? null)) {
      const value = text(form[name]);
      changes.push({ command: { type: "set_preference", field: name, value }, label: `${label} → ${value ?? "(none)"}`, path: "preferences", body: { field: name, value } });
    }
  }
  if (form.amount.trim() !== deal.amount.value) {
    const amount = { value: form.amount.trim(), currency: deal.amount.currency };
    changes.push({ command: { type: "change_amount", amount }, label: `Amount → ${amount.value} ${amount.currency}`, path: "amount", body: { amount } });
  }
  if (form.stage !== deal.stage) {
    changes.push({ command: { type: "move_stage", stage: form.stage }, label: `Stage → ${form.stage}`, path: "stage", body: { stage: form.stage } });
  }
  const save = async () => {
    if (online()) {
      const done = await send(async () => {
        for (const c of changes) await api.command(`/v1/opportunities/${deal.id}/${c.path}`, c.body);
      });
      if (done) setOpen(false);
      return;
    }
    try {
      for (const c of changes) {
        await record(api.session.user, { opportunity_id: deal.id, base_version: deal.version, command: c.command }, `${deal.name}: ${c.label}`);
      }
      setOpen(false);
    } catch (e) {
      setFailed(e);
    }
  };
  return (
    <form class="details-editor" aria-label="Deal details" onSubmit={(e) => { e.preventDefault(); void save(); }}>
      {failed !== null && <Alert error={failed} onDismiss={() => setFailed(null)} />}
      {field("next_step", "Next step")}
      {field("description", "Description")}
      {field("close_date", "Close date", { type: "date" })}
      {field("amount", `Amount (${deal.amount.currency})`, { inputMode: "decimal" })}
      <label>
        Stage{" "}
        <select value={form.stage} onChange={(e) => setForm({ ...form, stage: (e.target as HTMLSelectElement).value })}>
          {OPEN_STAGES.map((s) => <option key={s}>{s}</option>)}
        </select>
      </label>
      <button type="submit" disabled={changes.length === 0}>{online() ? "Save" : "Save offline"}</button>
      <button type="button" onClick={() => setOpen(false)}>Cancel</button>
    </form>
  );
}

function DeclineButton({ onDecline }: { onDecline: (reason: string) => void }) {
  const [asking, setAsking] = useState(false);
  const [reason, setReason] = useState("");
  if (!asking) return <button type="button" onClick={() => setAsking(true)}>Customer declined</button>;
  return (
    <form class="inline" onSubmit={(e) => { e.preventDefault(); onDecline(reason); }}>
      <label>Why did the customer decline? <input required value={reason} onInput={(e) => setReason((e.target as HTMLInputElement).value)} /></label>
      <button type="submit">Record the decline</button>
      <button type="button" onClick={() => setAsking(false)}>Cancel</button>
    </form>
  );
}
