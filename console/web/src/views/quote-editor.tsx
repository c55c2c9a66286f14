// Drafting or revising a quote: its lines, and, as they change, the totals and the
// approvals that submitting it would need, both from the server's own policy
// (POST /v1/quotes/preview), never computed here.
import { useEffect, useState } from "preact/hooks";
import { Api, Problem } from "../api";
import { show } from "../money";
import { describe } from "../problem";

export type Line = { product: string; quantity: string; unit_price: string; discount_percent: string };
type Preview = {
  totals: { list: string; discount: string; net: string; discount_percent: string };
  approvals: { approver: string; team: string | null; description: string }[];
};

const EMPTY: Line = { product: "", quantity: "1", unit_price: "", discount_percent: "0" };

export function QuoteEditor(props: {
  api: Api;
  opportunity: { id: string; version: number; team_id: string | null; amount: { currency: string } };
  /** Revising this quote; drafting a new one when absent. */
  quote?: { id: string; lines: Line[]; valid_until: string };
  onSaved: () => void;
  onCancel: () => void;
}) {
  const { api, opportunity, quote } = props;
  const currency = opportunity.amount.currency;
  const [lines, setLines] = useState<Line[]>(quote?.lines.map((l) => ({ ...l })) ?? [{ ...EMPTY }]);
  const [validUntil, setValidUntil] = useState(quote?.valid_until ?? new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10));
  const [preview, setPreview] = useState<Preview | null>(null);
  const [previewError, setPreviewError] = useState("");
  const [error, setError] = useState("");

  useEffect(() => {
    const complete = lines.every((l) => l.product && l.quantity && l.unit_price);
    if (!complete) {
      setPreview(null);
      setPreviewError("");
      return;
    }
    const timer = setTimeout(() => {
      api.preview(lines, opportunity.team_id).then(
        (p) => { setPreview(p as Preview); setPreviewError(""); },
        (e) => { setPreview(null); setPreviewError(describe(e)); },
      );
    }, 250);
    return () => clearTimeout(timer);
  }, [lines, api, opportunity.team_id]);

  const edit = (i: number, key: keyof Line, value: string) => setLines(lines.map((l, j) => (j === i ? { ...l, [key]: value } : l)));

  async function save(e: Event) {
    e.preventDefault();
    setError("");
    try {
      if (quote) {
        await api.command(`/v1/opportunities/${opportunity.id}/quotes/${quote.id}/revisions`, { lines, valid_until: validUntil }, opportunity.version);
      } else {
        await api.command(`/v1/opportunities/${opportunity.id}/quotes`, { currency, lines, valid_until: validUntil }, opportunity.version);
      }
      props.onSaved();
    } catch (e) {
      setError(e instanceof Problem && e.status === 409 ? "The deal changed since you opened it: reload it and try again." : describe(e));
    }
  }

  return (
    <form class="quote-editor" aria-label={quote ? "Revise the quote" : "New quote"} onSubmit={save}>
      <h3>{quote ? "Revise the quote" : "New quote"} ({currency})</h3>
      <table>
        <thead>
          <tr><th scope="col">Product</th><th scope="col">Quantity</th><th scope="col">Unit price</th><th scope="col">Discount %</th><th scope="col"><span class="visually-hidden">Remove</span></th></tr>
        </thead>
        <tbody>
          {lines.map((line, i) => (
            <tr key={i}>
              <td><input aria-label={`Line ${i + 1} product`} required value={line.product} onInput={(e) => edit(i, "product", (e.target as HTMLInputElement).value)} /></td>
              <td><input aria-label={`Line ${i + 1} quantity`} required inputMode="decimal" size={6} value={line.quantity} onInput={(e) => edit(i, "quantity", (e.target as HTMLInputElement).value)} /></td>
              <td><input aria-label={`Line ${i + 1} unit price`} required inputMode="decimal" size={10} value={line.unit_price} onInput={(e) => edit(i, "unit_price", (e.target as HTMLInputElement).value)} /></td>
              <td><input aria-label={`Line ${i + 1} discount percent`} inputMode="decimal" size={5} value={line.discount_percent} onInput={(e) => edit(i, "discount_percent", (e.target as HTMLInputElement).value)} /></td>
              <td>
                <button type="button" disabled={lines.length === 1} onClick={() => setLines(lines.filter((_, j) => j !== i))}>
                  Remove<span class="visually-hidden"> line {i + 1}</span>
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <button type="button" onClick={() => setLines([...lines, { ...EMPTY }])}>Add a line</button>
      <label>Valid until <input type="date" required value={validUntil} onInput={(e) => setValidUntil((e.target as HTMLInputElement).value)} /></label>
      <div class="preview" aria-live="polite" data-testid="quote-preview">
        {preview && (
          <>
            <p>
              Net <strong>{show({ value: preview.totals.net, currency })}</strong> of {show({ value: preview.totals.list, currency })} list,{" "}
              {preview.totals.discount_percent}% off.
            </p>
            <p data-testid="approvals-needed">
              {preview.approvals.length === 0
                ? "Needs no approval: it is approved when submitted."
                : `Submitting needs ${preview.approvals.length === 1 ? "one approval" : `${preview.approvals.length} approvals, in order`}: ${preview.approvals.map((a) => a.description).join(", then ")}.`}
            </p>
          </>
        )}
        {previewError && <p class="error">{previewError}</p>}
      </div>
      {error && <p class="error" role="alert">{error}</p>}
      <button type="submit">{quote ? "Save the revision" : "Save the draft"}</button>
      <button type="button" onClick={props.onCancel}>Cancel</button>
    </form>
  );
}
