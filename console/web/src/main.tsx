import { render } from "preact";
import { loadConfig, saveSession } from "./api";
import { App } from "./app";
import "./style.css";

const root = document.getElementById("app")!;
(async () => {
  const config = await loadConfig();
  if (config.sign_in.kind === "oidc") {
    // Loaded only where an identity provider signs users in.
    const { finishSignIn } = await import("./oidc");
    const session = await finishSignIn(config.sign_in);
    if (session) saveSession(session);
  }
  render(<App config={config} />, root);
})().catch((e) => render(<p role="alert">The console cannot start: {String(e)}</p>, root));
