// Sign-in on the local shared secret: pick a demo user; the console's service mints the token.
import { useState } from "preact/hooks";
import { signIn, type Config, type Session } from "../api";
import { Alert } from "../problem";

export function SignIn({ config, onSignedIn }: { config: Config; onSignedIn: (s: Session) => void }) {
  const [error, setError] = useState<unknown>(null);
  return (
    <main class="sign-in">
      <h1>Sign in to Tidemark</h1>
      <p>Demo company: pick who you are.</p>
      {error !== null && <Alert error={error} onDismiss={() => setError(null)} />}
      <ul class="users">
        {config.sign_in.users.map((user) => (
          <li key={user.name}>
            <button type="button" onClick={() => signIn(config, user).then(onSignedIn, setError)}>
              <strong>{user.name}</strong>
              <span>
                {user.roles.join(", ")}
                {user.team ? ` · team ${user.team}` : ""}
              </span>
            </button>
          </li>
        ))}
      </ul>
    </main>
  );
}
