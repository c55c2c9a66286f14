// The console's frame: sign-in, then the view that the URL's hash names.
import { useEffect, useMemo, useState } from "preact/hooks";
import { Api, loadSession, saveSession, type Config, type Session } from "./api";
import { Connection } from "./connection";
import { Approvals } from "./views/approvals";
import { Audit } from "./views/audit";
import { Board } from "./views/board";
import { Forecast } from "./views/forecast";
import { LineageView } from "./views/lineage";
import { OpportunityPage } from "./views/opportunity";
import { Reviews } from "./views/reviews";
import { SignIn } from "./views/sign-in";
import { Tasks } from "./views/tasks";

/** The views a user's roles lead to; the server decides what each answer holds. */
function viewsFor(roles: string[]): { path: string; title: string }[] {
  if (roles.includes("auditor")) return [{ path: "#/audit", title: "Audit" }];
  return [
    { path: "#/board", title: "Pipeline" },
    ...(roles.includes("approver") ? [{ path: "#/approvals", title: "Approvals" }] : []),
    { path: "#/tasks", title: "Tasks" },
    { path: "#/forecast", title: "Forecast" },
    { path: "#/reviews", title: "Reviews" },
  ];
}

function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const changed = () => setHash(location.hash);
    addEventListener("hashchange", changed);
    // The hash may have changed before this listened (a redirect on the first render).
    changed();
    return () => removeEventListener("hashchange", changed);
  }, []);
  return hash;
}

function View({ api, hash, home }: { api: Api; hash: string; home: string }) {
  const [route, ...parts] = hash.replace(/^#\//, "").split("/");
  switch (route) {
    case "board": return <Board api={api} />;
    case "approvals": return <Approvals api={api} />;
    case "tasks": return <Tasks api={api} />;
    case "forecast": return <Forecast api={api} />;
    case "audit": return <Audit api={api} />;
    case "reviews": return <Reviews api={api} />;
    case "opportunities": return <OpportunityPage api={api} id={parts[0]} />;
    case "lineage": return <LineageView api={api} aggregate={parts[0]} id={parts[1]} field={parts[2]} />;
    default:
      return <Redirect to={home} />;
  }
}

function Redirect({ to }: { to: string }) {
  useEffect(() => location.replace(to), [to]);
  return null;
}

export function App({ config }: { config: Config }) {
  const [session, setSession] = useState<Session | null>(loadSession);
  const hash = useHash();
  const api = useMemo(() => (session ? new Api(config, session) : null), [config, session]);

  function signedIn(s: Session | null) {
    saveSession(s);
    setSession(s);
  }

  if (!api || !session) return <SignIn config={config} onSignedIn={signedIn} />;
  const views = viewsFor(session.roles);
  return (
    <>
      <header class="top">
        <a class="brand" href={views[0].path}>Tidemark</a>
        <nav aria-label="Views">
          {views.map((v) => (
            <a key={v.path} href={v.path} aria-current={hash.startsWith(v.path) ? "page" : undefined}>
              {v.title}
            </a>
          ))}
        </nav>
        <Connection api={api} />
        <span class="who">
          Signed in as <strong data-testid="user">{session.user}</strong> ({session.roles.join(", ")})
        </span>
        <button type="button" onClick={() => signedIn(null)}>
          Sign out
        </button>
      </header>
      <main>
        <View api={api} hash={hash} home={views[0].path} />
      </main>
    </>
  );
}
