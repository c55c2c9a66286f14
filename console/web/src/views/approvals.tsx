// The approvals inbox: the steps that wait for me, delegated ones included ("on behalf
// of"); approve, or reject with a comment.
import { useState } from "preact/hooks";
import type { Api } from "../api";
import { useAnswer } from "../answer";
import { show } from "../money";
import { Alert } from "../problem";
import { StalenessBadge } from "../staleness";

type Pending = {
  quote_id: string;
  opportunity_id: string;
  opportunity_name: string;
  owner_id: string;
  revision: number;
  step: number;
  steps: number;
  approver: string;
  approver_team: string | null;
  requested_by: string;
  waiting_since: string;
  currency: string;
  list_amount: string;
  net_amount: string;
  discount_percent: string;
  age_seconds: number;
  on_behalf_of: string | null;
};

export function Approvals({ api }: { api: Api }) {
  const { answer, updating, error, setError, act } = useAnswer(() => api.query<Pending[]>("/v1/approvals/mine"), [api]);
  const items = answer?.data;
  const [notice, setNotice] = useState("");

  async function decide(item: Pending, decision: "approve" | "reject", comment?: string) {
    const path = `/v1/opportunities/${item.opportunity_id}/quotes/${item.quote_id}/${decision}`;
    if (await act(() => api.command(path, comment ? { comment } : {}))) {
      setNotice(`${decision === "approve" ? "Approved" : "Rejected"}: ${item.opportunity_name}, step ${item.step} of ${item.steps}.`);
    }
  }

  return (
    <section aria-labelledby="approvals-title">
      <header class="view-header">
        <h1 id="approvals-title">My approvals</h1>
        <StalenessBadge staleness={answer?.staleness} updating={updating} />
      </header>
      {notice && <p class="notice" role="status">{notice}</p>}
      {error !== null && <Alert error={error} onDismiss={() => setError(null)} />}
      {items?.length === 0 && <p>Nothing waits for you.</p>}
      <ul class="inbox">
        {items?.map((item) => (
          <li key={`${item.quote_id}-${item.step}`} data-testid="approval" data-name={item.opportunity_name}>
            <h2>
              <a href={`#/opportunities/${item.opportunity_id}`}>{item.opportunity_name}</a>
            </h2>
            <p>
              Step {item.step} of {item.steps} ({item.approver}
              {item.approver_team ? ` of team ${item.approver_team}` : ""}), revision {item.revision}, asked by {item.requested_by},
              waiting {Math.round(item.age_seconds / 60)} min
              {item.on_behalf_of && <strong> · on behalf of {item.on_behalf_of}</strong>}
            </p>
            <p>
              Net {show({ value: item.net_amount, currency: item.currency })} of {show({ value: item.list_amount, currency: item.currency })},{" "}
              {item.discount_percent}% off
            </p>
            <Decide item={item} onDecide={decide} />
          </li>
        ))}
      </ul>
    </section>
  );
}

function Decide({ item, onDecide }: { item: Pending; onDecide: (i: Pending, d: "approve" | "reject", comment?: string) => void }) {
  const [rejecting, setRejecting] = useState(false);
  const [comment, setComment] = useState("");
  if (!rejecting) {
    return (
      <div class="actions">
        <button type="submit" onClick={() => onDecide(item, "approve")}>Approve<span class="visually-hidden"> {item.opportunity_name}</span></button>
        <button type="button" onClick={() => setRejecting(true)}>Reject<span class="visually-hidden"> {item.opportunity_name}</span></button>
      </div>
    );
  }
  return (
    <form class="inline" onSubmit={(e) => { e.preventDefault(); onDecide(item, "reject", comment); }}>
      <label>Why do you reject it? <input required value={comment} onInput={(e) => setComment((e.target as HTMLInputElement).value)} /></label>
      <button type="submit">Reject the quote</button>
      <button type="button" onClick={() => setRejecting(false)}>Cancel</button>
    </form>
  );
}
