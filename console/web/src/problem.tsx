// How a refusal or an error reads on the page: what the server said, in its own words.
import { Problem } from "./api";

export function describe(e: unknown): string {
  if (e instanceof Problem) {
    const reason = e.reason ? ` (${e.reason})` : "";
    return `${e.title}: ${e.detail}${reason}`;
  }
  // fetch's own failure: no answer at all, most often no connection.
  if (e instanceof TypeError && !navigator.onLine) return "You are offline: this shows what was loaded before; it works again when the connection returns.";
  return e instanceof Error ? e.message : String(e);
}

export function Alert({ error, onDismiss }: { error: unknown; onDismiss: () => void }) {
  return (
    <div class="alert" role="alert">
      <span>{describe(error)}</span>
      <button type="button" onClick={onDismiss}>
        Dismiss
      </button>
    </div>
  );
}
