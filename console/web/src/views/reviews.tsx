// The review queue: changes I made offline that met a concurrent change no rule merges
// (stage, amount, the same quote line). Each shows the base, the server's side and mine;
// I keep one, or (for stage and amount) edit the value. Resolving is a command.
import { useState } from "preact/hooks";
import type { Api } from "../api";
import { useAnswer } from "../answer";
import { show, type Money } from "../money";
import { Alert } from "../problem";
import { StalenessBadge } from "../staleness";

type Side = { stage: string } | { amount: Money } | { quote: { lines: { product: string; quantity: string }[]; valid_until: string } } | null;
type Review = {
  id: string;
  opportunity_id: string;
  opportunity_name: string;
  subject: string;
  reason: string;
  intent: { device_time: string; base_version: number };
  base: Side;
  theirs: Side;
  mine: Side;
};

function text(side: Side): string {
  if (side === null) return "unknown";
  if ("stage" in side) return side.stage;
  if ("amount" in side) return show(side.amount);
  return side.quote.lines.map((l) => `${l.quantity} × ${l.product}`).join(", ") + `; valid until ${side.quote.valid_until}`;
}

export function Reviews({ api }: { api: Api }) {
  const { answer, updating, error, setError, act } = useAnswer(() => api.query<Review[]>("/v1/reviews"), [api]);
  const [notice, setNotice] = useState("");

  async function resolve(review: Review, choose: "mine" | "theirs" | "edit", value?: unknown) {
    const body = value === undefined ? { choose } : { choose, value };
    if (await act(() => api.command(`/v1/opportunities/${review.opportunity_id}/reviews/${review.id}/resolve`, body))) {
      setNotice(`Resolved: ${review.opportunity_name}, ${review.subject}.`);
    }
  }

  return (
    <section aria-labelledby="reviews-title">
      <header class="view-header">
        <h1 id="reviews-title">Reviews</h1>
        <StalenessBadge staleness={answer?.staleness} updating={updating} />
      </header>
      {notice && <p class="notice" role="status">{notice}</p>}
      {error !== null && <Alert error={error} onDismiss={() => setError(null)} />}
      {answer?.data.length === 0 && <p>Nothing to review: every change you made offline went through.</p>}
      <ul class="inbox">
        {answer?.data.map((r) => (
          <li key={r.id} data-testid="review" data-subject={r.subject}>
            <h2><a href={`#/opportunities/${r.opportunity_id}`}>{r.opportunity_name}</a>: {r.subject}</h2>
            <p>{r.reason}.</p>
            <table class="sides">
              <caption class="visually-hidden">Both sides</caption>
              <tbody>
                <tr><th scope="row">When you went offline</th><td data-testid="base">{text(r.base)}</td></tr>
                <tr><th scope="row">Now on the server</th><td data-testid="theirs">{text(r.theirs)}</td></tr>
                <tr><th scope="row">Your change</th><td data-testid="mine">{text(r.mine)}</td></tr>
              </tbody>
            </table>
            <div class="actions">
              <button type="button" onClick={() => resolve(r, "mine")}>Keep mine</button>
              <button type="button" onClick={() => resolve(r, "theirs")}>Keep theirs</button>
              {r.mine && "amount" in r.mine && <EditAmount money={r.mine.amount} onEdit={(amount) => resolve(r, "edit", { amount })} />}
            </div>
          </li>
        ))}
      </ul>
    </section>
  );
}

function EditAmount({ money, onEdit }: { money: Money; onEdit: (amount: Money) => void }) {
  const [value, setValue] = useState(money.value);
  return (
    <form class="inline" onSubmit={(e) => { e.preventDefault(); onEdit({ value, currency: money.currency }); }}>
      <label>Another amount ({money.currency}) <input value={value} inputMode="decimal" onInput={(e) => setValue((e.target as HTMLInputElement).value)} /></label>
      <button type="submit">Use this amount</button>
    </form>
  );
}
