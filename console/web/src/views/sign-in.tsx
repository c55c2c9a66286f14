// Sign-in: on the local shared secret, pick a demo user (the console's service mints the
// token); with an identity provider, go there and come back signed in.
import { useState } from "preact/hooks";
import { signIn, type Config, type Session } from "../api";
import { Alert } from "../problem";

export function SignIn({ config, onSignedIn }: { config: Config; onSignedIn: (s: Session) => void }) {
  const [error, setError] = useState<unknown>(null);
  const how = config.sign_in;
  return (
    <main class="sign-in">
      <h1>Sign in to Tidemark</h1>
      {error !== null && <Alert error={error} onDismiss={() => setError(null)} />}
      {how.kind === "oidc" ? (
        <button type="button" onClick={() => import("../oidc").then((oidc) => oidc.signInWith(how)).catch(setError)}>
          Sign in with your identity provider
        </button>
      ) : (
        <>
          <p>Demo company: pick who you are.</p>
          <ul class="users">
            {how.users.map((user) => (
              <li key={user.name}>
                <button type="button" onClick={() => signIn(user).then(onSignedIn, setError)}>
                  <strong>{user.name}</strong>
                  <span>
                    {user.roles.join(", ")}
                    {user.team ? ` · team ${user.team}` : ""}
                  </span>
                </button>
              </li>
            ))}
          </ul>
        </>
      )}
    </main>
  );
}
