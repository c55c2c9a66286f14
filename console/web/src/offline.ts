// Working offline: a change made without a connection becomes an intent, kept in IndexedDB
// (so that it survives a reload or a closed tab), shown as pending, and sent with
// `POST /v1/sync` when the connection returns. The server decides each intent against the
// deal as it is then: applied, merged, needs review (see the Reviews view) or refused.
import type { Api } from "./api";

export type IntentCommand =
  | { type: "set_preference"; field: "close_date" | "next_step" | "description"; value: string | null }
  | { type: "move_stage"; stage: string }
  | { type: "change_amount"; amount: { value: string; currency: string } };

export type Intent = {
  idempotency_key: string;
  opportunity_id: string;
  base_version: number;
  device_time: string;
  command: IntentCommand;
};

/** An intent as the queue keeps it: whose it is, and in which order it was recorded. */
type Queued = Intent & { user: string; seq: number; label: string };

export type Outcome = {
  idempotency_key: string;
  opportunity_id: string;
  outcome: "applied" | "merged" | "needs_review" | "refused";
  how?: string;
  review_id?: string;
  problem?: { title?: string; detail?: string };
};

export type SyncReport = { at: string; results: (Outcome & { label: string })[] };

const DB = "tidemark-offline";
const STORE = "intents";
/** Announced on `window` whenever the queue changes or a sync ends. */
export const CHANGED = "tidemark-intents";
/** The server takes at most this many intents a batch. */
const BATCH = 100;

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: "idempotency_key" });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function inStore<T>(mode: IDBTransactionMode, work: (store: IDBObjectStore) => IDBRequest<T> | void): Promise<T | undefined> {
  const db = await open();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const request = work(tx.objectStore(STORE));
    tx.oncomplete = () => { db.close(); resolve(request ? request.result : undefined); };
    tx.onerror = () => { db.close(); reject(tx.error); };
  });
}

/** Whether the browser believes it has a connection. */
export function online(): boolean {
  return navigator.onLine;
}

/** Keeps a change made offline, to be synced later. */
export async function record(user: string, intent: Omit<Intent, "idempotency_key" | "device_time">, label: string): Promise<void> {
  const queued: Queued = { ...intent, idempotency_key: crypto.randomUUID(), device_time: new Date().toISOString(), user, seq: Date.now() + Math.random(), label };
  await inStore("readwrite", (store) => store.add(queued));
  dispatchEvent(new Event(CHANGED));
}

/** The user's intents not yet synced, oldest first. */
export async function pending(user: string): Promise<Queued[]> {
  const all = ((await inStore("readonly", (store) => store.getAll())) ?? []) as Queued[];
  return all.filter((i) => i.user === user).sort((a, b) => a.seq - b.seq);
}

let last: SyncReport | null = null;
let syncing: Promise<SyncReport | null> | null = null;

/** What the last sync answered, for the page to show. */
export function lastReport(): SyncReport | null {
  return last;
}

/** Sends the user's pending intents, oldest first, and drops those the server answered.
 *  One sync at a time; a batch cut short (the connection went again) stays pending and is
 *  sent again later, which the server answers as the first time. */
export function sync(api: Api): Promise<SyncReport | null> {
  syncing ??= (async () => {
    try {
      const queued = await pending(api.session.user);
      if (queued.length === 0) return null;
      const results: SyncReport["results"] = [];
      for (let i = 0; i < queued.length; i += BATCH) {
        const batch = queued.slice(i, i + BATCH);
        const intents: Intent[] = batch.map(({ idempotency_key, opportunity_id, base_version, device_time, command }) => ({ idempotency_key, opportunity_id, base_version, device_time, command }));
        const answer = await api.sync(intents);
        const labels = new Map(batch.map((q) => [q.idempotency_key, q.label]));
        results.push(...answer.results.map((r) => ({ ...r, label: labels.get(r.idempotency_key) ?? "" })));
        await inStore("readwrite", (store) => { for (const r of answer.results) store.delete(r.idempotency_key); });
      }
      last = { at: new Date().toISOString(), results };
      return last;
    } finally {
      syncing = null;
      dispatchEvent(new Event(CHANGED));
    }
  })();
  return syncing;
}
