// One opportunity: its details, its quotes (lines, exact totals, the approval chain and who
// decided what and when) with the commands each quote's state allows, and its timeline.
import { useState } from "preact/hooks";
import { Api, Problem } from "../api";
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
        <dt>Closes</dt><dd>{deal.close_date} {why("close_date")}</dd>
        <dt>Owner</dt><dd>{deal.owner_id}{deal.team_id ? ` (team ${deal.team_id})` : ""}</dd>
        <dt>Version</dt><dd>{deal.version}</dd>
      </dl>

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
