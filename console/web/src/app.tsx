// The console's frame: sign-in, then a view chosen by the URL's hash.
import { useEffect, useMemo, useState } from "preact/hooks";
import { Api, loadSession, saveSession, type Config, type Session } from "./api";
import { Board } from "./views/board";
import { SignIn } from "./views/sign-in";

const VIEWS = [{ path: "#/board", title: "Pipeline" }];

function useHash(): string {
  const [hash, setHash] = useState(location.hash || "#/board");
  useEffect(() => {
    const changed = () => setHash(location.hash || "#/board");
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return hash;
}

export function App({ config }: { config: Config }) {
  const [session, setSession] = useState<Session | null>(loadSession);
  const [updating, setUpdating] = useState(false);
  const hash = useHash();
  const api = useMemo(() => (session ? new Api(config, session, setUpdating) : null), [config, session]);

  function signedIn(s: Session | null) {
    saveSession(s);
    setSession(s);
  }

  if (!api || !session) return <SignIn config={config} onSignedIn={signedIn} />;
  return (
    <>
      <header class="top">
        <a class="brand" href="#/board">Tidemark</a>
        <nav aria-label="Views">
          {VIEWS.map((v) => (
            <a key={v.path} href={v.path} aria-current={hash.startsWith(v.path) ? "page" : undefined}>
              {v.title}
            </a>
          ))}
        </nav>
        <span class="who">
          Signed in as <strong data-testid="user">{session.user}</strong> ({session.roles.join(", ")})
        </span>
        <button type="button" onClick={() => signedIn(null)}>
          Sign out
        </button>
      </header>
      <main>
        <Board api={api} updating={updating} />
      </main>
    </>
  );
}
