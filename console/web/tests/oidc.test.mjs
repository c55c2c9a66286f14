// Sign-in with a real OpenID provider (oidc-provider, a certified implementation, run
// here): the console's authorization-code flow with PKCE, and the APIs taking the
// provider's RS256 access token through Tidemark's JWKS check.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { chromium } from "playwright-core";
import Provider from "oidc-provider";
import { freePort, startTidemark } from "./tidemark.mjs";

const ARTEFACTS = new URL("../test-results/", import.meta.url).pathname;
const CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
/** Who the provider knows, with the claims Tidemark reads from an access token. */
const PEOPLE = { alice: { tenant: "default", roles: ["rep"], team: "east" } };

let issuer;
let provider;
let tidemark;
let browser;

before(async () => {
  const [providerPort, consolePort] = await Promise.all([freePort(), freePort()]);
  issuer = `http://127.0.0.1:${providerPort}`;
  const key = { ...generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" }), kid: "tidemark-test", use: "sig", alg: "RS256" };
  const oidc = new Provider(issuer, {
    clients: [{
      client_id: "tidemark-console",
      token_endpoint_auth_method: "none",
      redirect_uris: [`http://127.0.0.1:${consolePort}/`],
      grant_types: ["authorization_code"],
      response_types: ["code"],
    }],
    jwks: { keys: [key] },
    findAccount: (_ctx, sub) => (PEOPLE[sub] ? { accountId: sub, claims: () => ({ sub }) } : undefined),
    // Access tokens as JWTs for Tidemark (the resource), carrying its claims.
    features: {
      resourceIndicators: {
        enabled: true,
        defaultResource: () => "urn:tidemark",
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({ scope: "openid", audience: "tidemark", accessTokenFormat: "jwt", jwt: { sign: { alg: "RS256" } } }),
      },
    },
    extraTokenClaims: (_ctx, token) => PEOPLE[token.accountId],
  });
  provider = oidc.listen(providerPort);
  tidemark = await startTidemark(`${ARTEFACTS}logs-oidc`, {
    services: ["projector", "query-service", "console"],
    consolePort,
    env: { TIDEMARK_JWKS: `${issuer}/jwks`, TIDEMARK_OIDC_ISSUER: issuer, TIDEMARK_OIDC_CLIENT_ID: "tidemark-console" },
  });
  browser = await chromium.launch({ executablePath: process.env.TIDEMARK_CHROMIUM ?? "/usr/bin/chromium", args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  await tidemark?.stop();
  provider?.close();
});

test("with an identity provider, the console signs in by OIDC with PKCE and reads with its token", async () => {
  const page = await browser.newPage();
  const asked = [];
  page.on("request", (r) => r.url().startsWith(`${issuer}/auth?`) && asked.push(new URL(r.url()).searchParams));
  await page.goto(tidemark.console);
  await page.getByRole("button", { name: "Sign in with your identity provider" }).click();
  // The provider's own pages: any password, then consent.
  await page.locator('input[name="login"]').fill("alice");
  await page.locator('input[name="password"]').fill("any");
  await page.getByRole("button", { name: "Sign-in" }).click();
  await page.getByRole("button", { name: "Continue" }).click();
  await page.getByTestId("user").filter({ hasText: "alice" }).waitFor();
  assert.equal(new URL(page.url()).search, "", "the code leaves the address bar");
  assert.match(await page.locator(".who").textContent(), /alice \(rep\)/);
  // The query API took the provider's token: the board's answer carries its staleness note.
  const refused = page.getByRole("alert");
  const read = await Promise.race([
    page.getByTestId("staleness").filter({ hasText: "within bound" }).waitFor().then(() => "read"),
    refused.waitFor().then(() => refused.textContent()),
  ]);
  assert.equal(read, "read");
  assert.equal(asked[0].get("response_type"), "code");
  assert.equal(asked[0].get("code_challenge_method"), "S256");
  assert.ok(asked[0].get("code_challenge"), "PKCE's challenge");
  await page.screenshot({ path: `${ARTEFACTS}oidc.png`, fullPage: true });
  await page.close();
});
