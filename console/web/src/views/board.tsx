// The pipeline board: the user's opportunities (a manager's: their team's) in a column per
// stage, with each column's total and weighted amount. A card moves by drag and drop or by
// its "Move to" list; the move is a command that names the version the card showed.
import { useState } from "preact/hooks";
import { Api, Problem } from "../api";
import { useAnswer } from "../answer";
import { show, totals, weighted, type Money } from "../money";
import { Alert } from "../problem";
import { StalenessBadge } from "../staleness";

type Stage = { name: string; probability: number; closed: boolean };
type Opportunity = {
  id: string;
  name: string;
  owner_id: string;
  amount: Money;
  close_date: string;
  stage: string;
  probability: number;
  version: number;
};

/** A move refused because the deal changed: what the user saw, and what it is now. */
type Conflict = { saw: Opportunity; now: Opportunity | null };

/** A move into a closed stage waits for its reason. */
type Closing = { opportunity: Opportunity; stage: Stage };

export function Board({ api }: { api: Api }) {
  const { answer, updating, error, setError, reload: load, act } = useAnswer(async () => {
    const [stages, deals] = await Promise.all([api.query<Stage[]>("/v1/pipeline/stages"), api.all<Opportunity>("/v1/opportunities?limit=200")]);
    return { ...deals, data: { stages: stages.data, deals: deals.data } };
  }, [api]);
  const { stages, deals } = answer?.data ?? { stages: [], deals: [] };
  const [conflict, setConflict] = useState<Conflict | null>(null);
  const [closing, setClosing] = useState<Closing | null>(null);
  const [notice, setNotice] = useState("");

  async function move(deal: Opportunity, stage: Stage, reason?: string) {
    const send = stage.closed
      ? () => api.command(`/v1/opportunities/${deal.id}/close`, { outcome: stage.probability > 0 ? "won" : "lost", reason }, deal.version)
      : () => api.command(`/v1/opportunities/${deal.id}/stage`, { stage: stage.name }, deal.version);
    const failed = async (e: unknown) => {
      if (!(e instanceof Problem && e.status === 409)) return setError(e);
      const now = await api.query<Opportunity>(`/v1/opportunities/${deal.id}`).then((a) => a.data, () => null);
      setConflict({ saw: deal, now });
    };
    if (await act(send, failed)) setNotice(`${deal.name} moved to ${stage.name}.`);
  }

  function ask(deal: Opportunity, stageName: string) {
    const stage = stages.find((s) => s.name === stageName);
    if (!stage || stage.name === deal.stage) return;
    if (stage.closed) setClosing({ opportunity: deal, stage });
    else void move(deal, stage);
  }

  return (
    <section aria-labelledby="board-title">
      <header class="view-header">
        <h1 id="board-title">Pipeline</h1>
        <StalenessBadge staleness={answer?.staleness} updating={updating} />
      </header>
      <NewDeal api={api} onCreated={(name) => { setNotice(`${name} created.`); void load(); }} onError={setError} />
      {notice && <p class="notice" role="status">{notice}</p>}
      {error !== null && <Alert error={error} onDismiss={() => setError(null)} />}
      {conflict && (
        <div class="alert conflict" role="alertdialog" aria-labelledby="conflict-title">
          <h2 id="conflict-title">{conflict.saw.name} changed since you loaded it</h2>
          <p>
            You saw version {conflict.saw.version} in {conflict.saw.stage}
            {conflict.now ? `; it is now version ${conflict.now.version} in ${conflict.now.stage}.` : "."}
          </p>
          <button type="button" onClick={() => { setConflict(null); void load(); }}>
            Reload the board
          </button>
        </div>
      )}
      {closing && (
        <CloseDialog
          closing={closing}
          onCancel={() => setClosing(null)}
          onClose={(reason) => { setClosing(null); void move(closing.opportunity, closing.stage, reason); }}
        />
      )}
      <div class="board">
        {stages.map((stage) => (
          <Column key={stage.name} stage={stage} stages={stages} deals={deals.filter((d) => d.stage === stage.name)} onMove={ask} />
        ))}
      </div>
    </section>
  );
}

function Column({ stage, stages, deals, onMove }: { stage: Stage; stages: Stage[]; deals: Opportunity[]; onMove: (d: Opportunity, stage: string) => void }) {
  const [over, setOver] = useState(false);
  const id = `column-${stage.name.replace(/\s/g, "-")}`;
  const total = totals(deals.map((d) => d.amount));
  const expected = totals(deals.map((d) => weighted(d.amount, d.probability)));
  return (
    <section
      class={`column ${over ? "over" : ""}`}
      aria-labelledby={id}
      data-stage={stage.name}
      onDragOver={(e) => { e.preventDefault(); setOver(true); }}
      onDragLeave={() => setOver(false)}
      onDrop={(e) => {
        e.preventDefault();
        setOver(false);
        const deal = JSON.parse(e.dataTransfer?.getData("application/json") || "null") as Opportunity | null;
        if (deal) onMove(deal, stage.name);
      }}
    >
      <h2 id={id}>
        {stage.name} <span class="count">({deals.length})</span>
      </h2>
      <dl class="totals">
        <dt>Total</dt>
        <dd data-testid="total">{total.length ? total.map(show).join(", ") : "—"}</dd>
        <dt>Weighted</dt>
        <dd data-testid="weighted">{expected.length ? expected.map(show).join(", ") : "—"}</dd>
      </dl>
      <ul class="cards">
        {deals.map((deal) => (
          <li
            key={deal.id}
            class="card"
            draggable
            data-testid="card"
            data-name={deal.name}
            onDragStart={(e) => e.dataTransfer?.setData("application/json", JSON.stringify(deal))}
          >
            <a href={`#/opportunities/${deal.id}`} class="card-name">{deal.name}</a>
            <span class="card-amount">{show(deal.amount)}</span>
            <span class="card-meta">closes {deal.close_date} · {deal.owner_id}</span>
            <label>
              <span class="visually-hidden">Move {deal.name} to</span>
              <select value={deal.stage} onChange={(e) => onMove(deal, (e.target as HTMLSelectElement).value)}>
                {stages.map((s) => (
                  <option key={s.name} value={s.name}>{s.name === deal.stage ? `In ${s.name}` : `Move to ${s.name}`}</option>
                ))}
              </select>
            </label>
          </li>
        ))}
      </ul>
    </section>
  );
}

function CloseDialog({ closing, onCancel, onClose }: { closing: Closing; onCancel: () => void; onClose: (reason: string) => void }) {
  const [reason, setReason] = useState("");
  return (
    <div role="dialog" aria-labelledby="close-title">
    <form class="dialog" onSubmit={(e) => { e.preventDefault(); onClose(reason); }}>
      <h2 id="close-title">Close {closing.opportunity.name} as {closing.stage.name}</h2>
      <label>
        Reason
        <input required autoFocus value={reason} onInput={(e) => setReason((e.target as HTMLInputElement).value)} />
      </label>
      <button type="submit">Close the deal</button>
      <button type="button" onClick={onCancel}>Cancel</button>
    </form>
    </div>
  );
}

function NewDeal({ api, onCreated, onError }: { api: Api; onCreated: (name: string) => void; onError: (e: unknown) => void }) {
  const [open, setOpen] = useState(false);
  const nextQuarter = new Date(Date.now() + 90 * 86_400_000).toISOString().slice(0, 10);
  const [form, setForm] = useState({ account: "", name: "", amount: "", currency: "EUR", close_date: nextQuarter });
  const field = (key: keyof typeof form) => ({
    value: form[key],
    onInput: (e: Event) => setForm({ ...form, [key]: (e.target as HTMLInputElement).value }),
  });

  async function create(e: Event) {
    e.preventDefault();
    try {
      const account = await api.command("/v1/accounts", { name: form.account });
      await api.command("/v1/opportunities", {
        account_id: account.id,
        name: form.name,
        owner_id: api.session.user,
        amount: { value: form.amount, currency: form.currency },
        close_date: form.close_date,
      });
      setOpen(false);
      onCreated(form.name);
    } catch (error) {
      onError(error);
    }
  }

  if (!open) {
    return (
      <button type="button" onClick={() => setOpen(true)}>
        New deal
      </button>
    );
  }
  return (
    <form class="new-deal" onSubmit={create} aria-label="New deal">
      <label>Account <input required {...field("account")} /></label>
      <label>Deal <input required {...field("name")} /></label>
      <label>Amount <input required inputMode="decimal" pattern="\d+(\.\d{1,3})?" {...field("amount")} /></label>
      <label>Currency <input required pattern="[A-Z]{3}" size={3} {...field("currency")} /></label>
      <label>Closes <input required type="date" {...field("close_date")} /></label>
      <button type="submit">Create the deal</button>
      <button type="button" onClick={() => setOpen(false)}>Cancel</button>
    </form>
  );
}
