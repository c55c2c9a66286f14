// Sign-in with a real identity provider: the OIDC authorization-code flow with PKCE, the
// page being a public client (oidc-client-ts does the protocol). The APIs take the access
// token; the roles and team the page shows come from its claims, as the APIs read them.
import { UserManager, WebStorageStateStore } from "oidc-client-ts";
import type { OidcSignIn, Session } from "./api";

function manager(c: OidcSignIn): UserManager {
  return new UserManager({
    authority: c.issuer,
    client_id: c.client_id,
    redirect_uri: `${location.origin}/`,
    response_type: "code",
    scope: c.scope,
    userStore: new WebStorageStateStore({ store: sessionStorage }),
  });
}

export function signInWith(c: OidcSignIn): Promise<void> {
  return manager(c).signinRedirect();
}

/** The claims of a JWT, unverified: the APIs verify the token; the page only shows them. */
function claims(token: string): Record<string, unknown> {
  const payload = token.split(".")[1] ?? "";
  const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(payload.length / 4) * 4, "="));
  return JSON.parse(json) as Record<string, unknown>;
}

/** Finishes a sign-in when the provider has just sent the user back here with a code. */
export async function finishSignIn(c: OidcSignIn): Promise<Session | null> {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return null;
  const user = await manager(c).signinRedirectCallback();
  history.replaceState(null, "", `/${location.hash}`);
  const token = user.access_token;
  const said = claims(token);
  return {
    user: String(said.sub ?? user.profile.sub),
    token,
    roles: Array.isArray(said.roles) ? said.roles.map(String) : [],
    team: typeof said.team === "string" ? said.team : null,
  };
}
