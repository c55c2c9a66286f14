// The page's only way to Tidemark: the public command and query APIs, with the signed-in
// user's bearer token. One session token follows the user: every command and read hands
// one back, and every later read sends the latest, so a user always sees their own writes.
import type { Intent, Outcome } from "./offline";

export type DemoUser = { name: string; roles: string[]; team: string | null };
export type OidcSignIn = { kind: "oidc"; issuer: string; client_id: string; scope: string };
export type Config = { command_api: string; query_api: string; sign_in: { kind: "demo"; users: DemoUser[] } | OidcSignIn };

/** The staleness note of a query answer: what the answer is based on. */
export type Staleness = {
  projection: string;
  lag_events: number;
  lag_ms: number | null;
  fresh: boolean;
  unmet?: string[];
  read_at: string;
};

export type Answer<T> = { data: T; staleness?: Staleness; consistency_token?: string; next_cursor?: string | null };

/** What a command hands back. */
export type Accepted = { id: string; version: number; consistency_token: string; events: { type: string }[] };

/** An RFC 9457 problem, as every API answers a refusal or an error. */
export class Problem extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string,
    readonly extra: Record<string, unknown>,
  ) {
    super(detail || title);
  }

  /** The rule or reason a refusal names, when it names one. */
  get reason(): string | undefined {
    const named = this.extra.rule ?? this.extra.reason_code;
    return typeof named === "string" ? named : undefined;
  }
}

export type Session = { user: string; token: string; roles: string[]; team: string | null };

const SESSION_KEY = "tidemark.session";
const CONSISTENCY_KEY = "tidemark.consistency";

export function loadSession(): Session | null {
  const text = sessionStorage.getItem(SESSION_KEY);
  return text ? (JSON.parse(text) as Session) : null;
}

export function saveSession(session: Session | null) {
  sessionStorage.removeItem(CONSISTENCY_KEY);
  if (session) sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  else sessionStorage.removeItem(SESSION_KEY);
}

function consistencyToken(): string | null {
  return sessionStorage.getItem(CONSISTENCY_KEY);
}

/** Whether reads now wait for the user's own writes (after a command of theirs). */
export function waitsForWrites(): boolean {
  return consistencyToken() !== null;
}

function remember(token: string | undefined) {
  if (token) sessionStorage.setItem(CONSISTENCY_KEY, token);
}

async function problemOf(response: Response): Promise<Problem> {
  const body = await response.json().catch(() => ({}));
  const { status, title, detail, type: _type, ...extra } = body as Record<string, unknown>;
  return new Problem(
    typeof status === "number" ? status : response.status,
    typeof title === "string" ? title : response.statusText,
    typeof detail === "string" ? detail : "",
    extra,
  );
}

export class Api {
  constructor(
    readonly config: Config,
    readonly session: Session,
  ) {}

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { Authorization: `Bearer ${this.session.token}`, ...extra };
  }

  /** A read. With the session's token it waits (briefly) for the user's own writes, and is
   *  served marked stale rather than refused if the read model is slower than that. */
  async query<T>(path: string): Promise<Answer<T>> {
    const url = new URL(this.config.query_api + path);
    const token = consistencyToken();
    if (token) {
      url.searchParams.set("on_stale", "serve");
      url.searchParams.set("wait_ms", "3000");
    }
    const response = await fetch(url, { headers: this.headers(token ? { "Consistency-Token": token } : {}) });
    if (!response.ok) throw await problemOf(response);
    const answer = (await response.json()) as Answer<T>;
    remember(answer.consistency_token);
    return answer;
  }

  /** Every page of a list, up to `most` items. */
  async all<T>(path: string, most = 2000): Promise<Answer<T[]>> {
    const items: T[] = [];
    let answer: Answer<T[]>;
    let cursor: string | null | undefined;
    do {
      const separator = path.includes("?") ? "&" : "?";
      answer = await this.query<T[]>(path + (cursor ? `${separator}cursor=${encodeURIComponent(cursor)}` : ""));
      items.push(...answer.data);
      cursor = answer.next_cursor;
    } while (cursor && items.length < most);
    return { ...answer, data: items };
  }

  /** The PDF of a quote's latest approved revision. */
  async document(quoteId: string): Promise<Blob> {
    const response = await fetch(`${this.config.query_api}/v1/quotes/${quoteId}/document`, { headers: this.headers() });
    if (!response.ok) throw await problemOf(response);
    return await response.blob();
  }

  /** What a quote with these lines would total, and the approvals it would need. */
  preview(lines: unknown[], team: string | null): Promise<unknown> {
    return this.post("/v1/quotes/preview", { lines, team });
  }

  /** Intents recorded offline, in order (see `offline.ts`); each gets its own outcome. */
  async sync(intents: Intent[]): Promise<{ results: Outcome[]; consistency_token: string }> {
    const token = consistencyToken();
    const answer = await this.post<{ results: Outcome[]; consistency_token: string }>("/v1/sync", { intents }, token ? { "Consistency-Token": token } : {});
    remember(answer.consistency_token);
    return answer;
  }

  /** A command. `version` is the version the user saw (If-Match); a newer one gets a 409. */
  async command(path: string, body: unknown, version?: number): Promise<Accepted> {
    const headers: Record<string, string> = { "Idempotency-Key": crypto.randomUUID() };
    if (version !== undefined) headers["If-Match"] = `"${version}"`;
    const token = consistencyToken();
    if (token) headers["Consistency-Token"] = token;
    const accepted = await this.post<Accepted>(path, body, headers);
    remember(accepted.consistency_token);
    return accepted;
  }

  private async post<T>(path: string, body: unknown, extra: Record<string, string> = {}): Promise<T> {
    const headers = this.headers({ "Content-Type": "application/json", ...extra });
    const response = await fetch(this.config.command_api + path, { method: "POST", headers, body: JSON.stringify(body) });
    if (!response.ok) throw await problemOf(response);
    return (await response.json()) as T;
  }
}

export async function loadConfig(): Promise<Config> {
  const response = await fetch("/config.json");
  if (!response.ok) throw await problemOf(response);
  return (await response.json()) as Config;
}

export async function signIn(user: DemoUser): Promise<Session> {
  const response = await fetch("/sign-in", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user: user.name }),
  });
  if (!response.ok) throw await problemOf(response);
  const { token } = (await response.json()) as { token: string };
  return { user: user.name, token, roles: user.roles, team: user.team };
}
