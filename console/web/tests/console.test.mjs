// The console in a real browser (Debian's Chromium, headless, driven by playwright-core)
// against a real Tidemark: Kafka, PostgreSQL, and the services as separate processes.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { chromium } from "playwright-core";
import AxeBuilder from "@axe-core/playwright";
import { startTidemark } from "./tidemark.mjs";

const ARTEFACTS = new URL("../test-results/", import.meta.url).pathname;
// Without the background-networking flags Chromium keeps calling out to a closed network.
const CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

let tidemark;
let browser;

before(async () => {
  mkdirSync(ARTEFACTS, { recursive: true });
  tidemark = await startTidemark(`${ARTEFACTS}logs`);
  browser = await chromium.launch({ executablePath: process.env.TIDEMARK_CHROMIUM ?? "/usr/bin/chromium", args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  await tidemark?.stop();
});

async function signIn(user) {
  const context = await browser.newContext({ viewport: { width: 1500, height: 900 } });
  const page = await context.newPage();
  await page.goto(tidemark.console);
  await page.getByRole("button", { name: new RegExp(`^${user}\\b`) }).click();
  await page.getByTestId("user").filter({ hasText: user }).waitFor();
  return page;
}

/** No accessibility violations on the page as it stands. */
async function accessible(page, name) {
  const { violations } = await new AxeBuilder({ page }).analyze();
  const found = violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`);
  assert.deepEqual(found, [], `axe found violations on ${name}`);
}

async function shot(page, name) {
  await page.screenshot({ path: `${ARTEFACTS}${name}.png`, fullPage: true });
}

const column = (page, stage) => page.locator(`section.column[data-stage="${stage}"]`);
const card = (page, stage, name) => column(page, stage).getByTestId("card").filter({ hasText: name });

async function newDeal(page, deal) {
  await page.getByRole("button", { name: "New deal" }).click();
  const form = page.getByRole("form", { name: "New deal" });
  await form.getByLabel("Account").fill(deal.account);
  await form.getByLabel("Deal").fill(deal.name);
  await form.getByLabel("Amount").fill(deal.amount);
  await form.getByRole("button", { name: "Create the deal" }).click();
  await card(page, "Prospecting", deal.name).waitFor();
}

describe("the console", () => {
  test("the sign-in page lists the demo users and passes axe", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(tidemark.console);
    await page.getByRole("heading", { name: "Sign in to Tidemark" }).waitFor();
    for (const user of ["alice", "mia", "fiona", "audrey"]) {
      assert.ok(await page.getByRole("button", { name: new RegExp(`^${user}\\b`) }).isVisible(), `${user} is offered`);
    }
    await accessible(page, "the sign-in page");
    await shot(page, "sign-in");
    await context.close();
  });

  test("alice creates a deal and moves it on the board; the columns total and weight it", async () => {
    const page = await signIn("alice");
    await newDeal(page, { account: "Acme GmbH", name: "Fleet renewal", amount: "12000.00" });
    const prospecting = column(page, "Prospecting");
    assert.equal(await prospecting.getByTestId("total").textContent(), "12,000.00 EUR");
    assert.equal(await prospecting.getByTestId("weighted").textContent(), "1,200.00 EUR");

    // With the keyboard's list ...
    await card(page, "Prospecting", "Fleet renewal").getByLabel("Move Fleet renewal to").selectOption("Qualification");
    await card(page, "Qualification", "Fleet renewal").waitFor();
    assert.equal(await column(page, "Qualification").getByTestId("weighted").textContent(), "2,400.00 EUR");
    assert.equal(await prospecting.getByTestId("total").textContent(), "—");
    // ... and by drag and drop.
    await card(page, "Qualification", "Fleet renewal").dragTo(column(page, "Proposal"));
    await card(page, "Proposal", "Fleet renewal").waitFor();
    assert.equal(await column(page, "Proposal").getByTestId("weighted").textContent(), "6,000.00 EUR");
    await page.getByTestId("staleness").filter({ hasText: "within bound" }).waitFor();
    await accessible(page, "the board");
    await shot(page, "board");
    await page.context().close();
  });

  test("a refusal shows its reason", async () => {
    const page = await signIn("alice");
    await newDeal(page, { account: "Refusals AG", name: "Too small", amount: "100.00" });
    // Closing needs the close command; a lost deal says why, an empty reason is refused by the page itself.
    await card(page, "Prospecting", "Too small").getByLabel("Move Too small to").selectOption("Closed Lost");
    const dialog = page.getByRole("dialog", { name: /Close Too small/ });
    await dialog.getByLabel("Reason").fill("budget cut");
    await dialog.getByRole("button", { name: "Close the deal" }).click();
    await card(page, "Closed Lost", "Too small").waitFor();
    // A closed deal cannot move again: the server refuses, and the page says so.
    await card(page, "Closed Lost", "Too small").getByLabel("Move Too small to").selectOption("Negotiation");
    const alert = page.getByRole("alert");
    await alert.waitFor();
    assert.match(await alert.textContent(), /closed/i);
    await page.context().close();
  });

  test("two sessions move the same deal: the second gets a 409 that says what changed", async () => {
    const first = await signIn("alice");
    await newDeal(first, { account: "Conflict Ltd", name: "Contested", amount: "5000.00" });
    const second = await signIn("alice");
    await card(second, "Prospecting", "Contested").waitFor();

    await card(first, "Prospecting", "Contested").getByLabel("Move Contested to").selectOption("Qualification");
    await card(first, "Qualification", "Contested").waitFor();
    // The second session still shows version 1 in Prospecting.
    await card(second, "Prospecting", "Contested").getByLabel("Move Contested to").selectOption("Proposal");
    const conflict = second.getByRole("alertdialog", { name: /Contested changed since you loaded it/ });
    await conflict.waitFor();
    assert.match(await conflict.textContent(), /You saw version 1 in Prospecting; it is now version 2 in Qualification/);
    await shot(second, "conflict");
    await conflict.getByRole("button", { name: "Reload the board" }).click();
    await card(second, "Qualification", "Contested").waitFor();
    await first.context().close();
    await second.context().close();
  });

  test("the staleness badge says so while the projector is paused, and recovers", async () => {
    const page = await signIn("bob");
    await newDeal(page, { account: "Paused Inc", name: "Waiting", amount: "700.00" });
    tidemark.pauseProjector();
    try {
      await card(page, "Prospecting", "Waiting").getByLabel("Move Waiting to").selectOption("Qualification");
      // The read waits for bob's own write, then is served marked stale.
      await page.getByTestId("staleness").filter({ hasText: "updating…" }).waitFor();
      const badge = page.getByTestId("staleness").filter({ hasText: "stale" });
      await badge.waitFor({ timeout: 15_000 });
      assert.match(await badge.textContent(), /events behind/);
      await shot(page, "stale");
      await accessible(page, "the board while stale");
    } finally {
      tidemark.resumeProjector();
    }
    await page.getByRole("link", { name: "Pipeline" }).click();
    await page.reload();
    await card(page, "Qualification", "Waiting").waitFor({ timeout: 30_000 });
    await page.getByTestId("staleness").filter({ hasText: "within bound" }).waitFor();
    await page.context().close();
  });

  test("a deal from the board to the forecast: a quote needing two approvals, approved by mia then fiona, accepted, won", async () => {
    const alice = await signIn("alice");
    await newDeal(alice, { account: "Fleet Corp", name: "Fleet trucks", amount: "12000.00" });
    for (const stage of ["Qualification", "Proposal"]) {
      const current = alice.locator("section.column").filter({ has: alice.getByTestId("card").filter({ hasText: "Fleet trucks" }) });
      await current.getByLabel("Move Fleet trucks to").selectOption(stage);
      await card(alice, stage, "Fleet trucks").waitFor();
    }
    await card(alice, "Proposal", "Fleet trucks").getByRole("link", { name: "Fleet trucks" }).click();
    await alice.getByRole("heading", { name: "Fleet trucks", level: 1 }).waitFor();
    const opportunity = alice.url();

    // The editor shows the policy's verdict before anything is submitted.
    await alice.getByRole("button", { name: "New quote" }).click();
    const editor = alice.getByRole("form", { name: "New quote" });
    await editor.getByLabel("Line 1 product").fill("Truck");
    await editor.getByLabel("Line 1 quantity").fill("4");
    await editor.getByLabel("Line 1 unit price").fill("2500.00");
    await editor.getByLabel("Line 1 discount percent").fill("25");
    await alice.getByTestId("approvals-needed").filter({ hasText: "2 approvals, in order: a manager of team east, then finance" }).waitFor();
    await accessible(alice, "the quote editor");
    await shot(alice, "quote-editor");
    await editor.getByRole("button", { name: "Save the draft" }).click();
    await alice.getByTestId("quote-status").filter({ hasText: "draft" }).waitFor();
    assert.equal(await alice.getByTestId("quote-net").textContent(), "7,500.00 EUR");
    await alice.getByRole("button", { name: "Submit for approval" }).click();
    await alice.getByTestId("quote-status").filter({ hasText: "pending approval" }).waitFor();

    for (const approver of ["mia", "fiona"]) {
      const page = await signIn(approver);
      await page.getByRole("link", { name: "Approvals" }).click();
      const item = page.getByTestId("approval").filter({ hasText: "Fleet trucks" });
      await item.waitFor();
      await accessible(page, `${approver}'s approvals`);
      await shot(page, `approvals-${approver}`);
      await item.getByRole("button", { name: "Approve Fleet trucks" }).click();
      await page.getByRole("status").filter({ hasText: "Approved: Fleet trucks" }).waitFor();
      await item.waitFor({ state: "detached" });
      await page.context().close();
    }

    await alice.reload();
    await alice.getByTestId("quote-status").filter({ hasText: "approved" }).waitFor();
    const decisions = alice.locator("table.history tbody tr");
    assert.equal(await decisions.count(), 2);
    assert.match(await decisions.nth(0).textContent(), /mia.*approved/);
    assert.match(await decisions.nth(1).textContent(), /fiona.*approved/);
    // The approved revision's document, as the customer gets it.
    const [download] = await Promise.all([alice.waitForEvent("download"), alice.getByRole("button", { name: "Download the PDF" }).click()]);
    const pdf = readFileSync(await download.path());
    assert.equal(pdf.subarray(0, 5).toString(), "%PDF-");
    const text = execFileSync("pdftotext", ["-layout", await download.path(), "-"]).toString();
    assert.match(text, /Fleet trucks/);
    assert.match(text, /Total\s+7500\.00 EUR/);
    assert.match(text, /approved by mia/);
    await alice.getByRole("button", { name: "Customer accepted" }).click();
    await alice.getByTestId("quote-status").filter({ hasText: "accepted" }).waitFor();
    await alice.getByTestId("deal-amount").filter({ hasText: "7,500.00 EUR" }).waitFor();
    await accessible(alice, "the opportunity page");
    await shot(alice, "opportunity");

    await alice.getByRole("link", { name: "Pipeline" }).click();
    await card(alice, "Proposal", "Fleet trucks").getByLabel("Move Fleet trucks to").selectOption("Negotiation");
    await card(alice, "Negotiation", "Fleet trucks").getByLabel("Move Fleet trucks to").selectOption("Closed Won");
    const close = alice.getByRole("dialog", { name: /Close Fleet trucks/ });
    await close.getByLabel("Reason").fill("signed");
    await close.getByRole("button", { name: "Close the deal" }).click();
    await card(alice, "Closed Won", "Fleet trucks").waitFor();

    await alice.getByRole("link", { name: "Forecast" }).click();
    await alice.getByTestId("chart-Closed").filter({ hasText: "7,500.00 EUR · weighted 7,500.00 EUR" }).waitFor();
    await accessible(alice, "the forecast");
    await shot(alice, "forecast");
    await alice.context().close();

    // The auditor traces the amount to the events that set it.
    const id = new URL(opportunity).hash.split("/").pop();
    const audrey = await signIn("audrey");
    await audrey.getByRole("heading", { name: "Audit" }).waitFor();
    const rejected = audrey.getByRole("tab", { name: "Rejected commands" });
    await rejected.click();
    await audrey.getByTestId("audit-list").filter({ hasText: "alice" }).waitFor();
    await accessible(audrey, "the audit view");
    const trace = audrey.getByRole("form", { name: "Why is this value?" });
    await trace.getByLabel("Id").fill(id);
    await trace.getByRole("button", { name: "Why is this value?" }).click();
    await audrey.getByTestId("lineage-value").filter({ hasText: "7,500.00 EUR" }).waitFor();
    const events = audrey.getByTestId("lineage-event");
    assert.equal(await events.count(), 2, "created with 12,000, then the accepted quote's net");
    assert.match(await events.nth(0).textContent(), /OpportunityCreated.*alice \(user\)/s);
    assert.match(await events.nth(1).textContent(), /alice/);
    await accessible(audrey, "the lineage");
    await shot(audrey, "lineage");
    await audrey.context().close();
  });

  test("the board works with the keyboard alone", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(tidemark.console);
    await page.getByRole("button", { name: /^dave\b/ }).focus();
    await page.keyboard.press("Enter");
    await page.getByTestId("user").filter({ hasText: "dave" }).waitFor();
    await newDeal(page, { account: "Keys Ltd", name: "By keyboard", amount: "900.00" });
    await card(page, "Prospecting", "By keyboard").getByLabel("Move By keyboard to").focus();
    await page.keyboard.press("ArrowDown");
    await card(page, "Qualification", "By keyboard").waitFor();
    await context.close();
  });

  test("a delegate's inbox shows the steps they decide on whose behalf, and the decision records both", async () => {
    const carol = await signIn("carol");
    const config = await (await fetch(`${tidemark.console}/config.json`)).json();
    const token = async (user) => (await (await fetch(`${tidemark.console}/sign-in`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ user }) })).json()).token;
    const [carolToken, wesToken] = [await token("carol"), await token("wes")];
    const day = (offset) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
    // Wes, carol's manager, is away: mia decides his steps.
    await command(config, wesToken, "/v1/delegations", { delegate: "mia", valid_from: day(0), valid_until: day(7) });
    const account = await command(config, carolToken, "/v1/accounts", { name: "West Works" });
    const deal = await command(config, carolToken, "/v1/opportunities", {
      account_id: account.id, name: "Westward", owner_id: "carol", amount: { value: "4000.00", currency: "EUR" }, close_date: day(60),
    });
    await carol.goto(`${tidemark.console}/#/opportunities/${deal.id}`);
    await carol.getByRole("button", { name: "New quote" }).click();
    const editor = carol.getByRole("form", { name: "New quote" });
    await editor.getByLabel("Line 1 product").fill("Van");
    await editor.getByLabel("Line 1 unit price").fill("4000.00");
    await editor.getByLabel("Line 1 discount percent").fill("15");
    await carol.getByTestId("approvals-needed").filter({ hasText: "one approval: a manager of team west" }).waitFor();
    await editor.getByRole("button", { name: "Save the draft" }).click();
    await carol.getByRole("button", { name: "Submit for approval" }).click();
    await carol.getByTestId("quote-status").filter({ hasText: "pending approval" }).waitFor();

    const mia = await signIn("mia");
    await mia.getByRole("link", { name: "Approvals" }).click();
    const item = mia.getByTestId("approval").filter({ hasText: "Westward" });
    await item.filter({ hasText: "on behalf of wes" }).waitFor();
    await item.getByRole("button", { name: "Approve Westward" }).click();
    await item.waitFor({ state: "detached" });
    await mia.context().close();

    await carol.reload();
    await carol.getByTestId("quote-status").filter({ hasText: "approved" }).waitFor();
    assert.match(await carol.locator("table.history tbody tr").first().textContent(), /mia on behalf of wes/);
    await carol.context().close();
  });

  test("a pending quote is recalled, revised below the approval threshold, and approved when submitted", async () => {
    const page = await signIn("erin");
    await newDeal(page, { account: "Revise SA", name: "Second thoughts", amount: "2000.00" });
    await card(page, "Prospecting", "Second thoughts").getByRole("link", { name: "Second thoughts" }).click();
    await page.getByRole("button", { name: "New quote" }).click();
    let editor = page.getByRole("form", { name: "New quote" });
    await editor.getByLabel("Line 1 product").fill("Seats");
    await editor.getByLabel("Line 1 unit price").fill("2000.00");
    await editor.getByLabel("Line 1 discount percent").fill("15");
    await editor.getByRole("button", { name: "Save the draft" }).click();
    await page.getByRole("button", { name: "Submit for approval" }).click();
    await page.getByTestId("quote-status").filter({ hasText: "pending approval" }).waitFor();
    await page.getByRole("button", { name: "Recall" }).click();
    await page.getByTestId("quote-status").filter({ hasText: "draft" }).waitFor();
    await page.getByRole("button", { name: "Revise" }).click();
    editor = page.getByRole("form", { name: "Revise the quote" });
    await editor.getByLabel("Line 1 discount percent").fill("5");
    await page.getByTestId("approvals-needed").filter({ hasText: "Needs no approval" }).waitFor();
    await editor.getByRole("button", { name: "Save the revision" }).click();
    await page.getByRole("heading", { name: /revision 2/ }).waitFor();
    await page.getByRole("button", { name: "Submit for approval" }).click();
    await page.getByTestId("quote-status").filter({ hasText: "approved" }).waitFor();
    assert.equal(await page.getByTestId("quote-net").textContent(), "1,900.00 EUR");
    await page.context().close();
  });

  test("my tasks list the overdue first, and a task completes", async () => {
    const page = await signIn("carol");
    // Tasks come from the command API, as another client would set them.
    const token = await page.evaluate(() => JSON.parse(sessionStorage.getItem("tidemark.session")).token);
    const config = await (await fetch(`${tidemark.console}/config.json`)).json();
    const day = (offset) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
    const account = await command(config, token, "/v1/accounts", { name: "Tasks GmbH" });
    let set;
    for (const [subject, due] of [["Later task", day(3)], ["Late task", day(-2)]]) {
      set = await command(config, token, "/v1/activities", { kind: "task", about: "account", about_id: account.id, subject, due_date: due });
    }
    // The page reads its user's writes from then on, as after a command of its own.
    await page.evaluate((t) => sessionStorage.setItem("tidemark.consistency", t), set.consistency_token);
    await page.getByRole("link", { name: "Tasks" }).click();
    const tasks = page.getByTestId("task");
    await tasks.filter({ hasText: "Later task" }).waitFor();
    assert.match(await tasks.nth(0).textContent(), /Late task.*overdue/);
    await accessible(page, "my tasks");
    await shot(page, "tasks");
    await page.getByRole("button", { name: "Complete Late task" }).click();
    await tasks.filter({ hasText: "Late task" }).filter({ hasNotText: "Later" }).waitFor({ state: "detached" });
    assert.equal(await tasks.count(), 1);
    await page.context().close();
  });

  test("alice works offline: her changes wait in IndexedDB, sync when she is back, and a conflict waits in her reviews", async () => {
    const laptop = await signIn("alice");
    await newDeal(laptop, { account: "Rail Freight AG", name: "Train deal", amount: "10000.00" });
    await card(laptop, "Prospecting", "Train deal").getByRole("link", { name: "Train deal" }).click();
    await laptop.getByTestId("deal-amount").filter({ hasText: "10,000.00 EUR" }).waitFor();

    // The laptop loses its connection; Alice edits the deal anyway.
    await laptop.context().setOffline(true);
    await laptop.getByTestId("connection").filter({ hasText: "offline" }).waitFor();
    await laptop.getByRole("button", { name: "Edit details" }).click();
    const form = laptop.getByRole("form", { name: "Deal details" });
    await form.getByLabel("Next step").fill("Call the fleet manager");
    await form.getByLabel("Amount (EUR)").fill("9000.00");
    await form.getByRole("button", { name: "Save offline" }).click();
    await laptop.getByTestId("pending").nth(1).waitFor();
    assert.deepEqual(await laptop.getByTestId("pending").allTextContents(), ["Train deal: Next step → Call the fleet manager", "Train deal: Amount → 9000.00 EUR"]);
    assert.match(await laptop.getByTestId("connection").textContent(), /offline · 2 pending/);
    const kept = await laptop.evaluate(() => new Promise((resolve, reject) => {
      const open = indexedDB.open("tidemark-offline");
      open.onsuccess = () => {
        const all = open.result.transaction("intents").objectStore("intents").getAll();
        all.onsuccess = () => resolve(all.result.map((i) => [i.command.type, i.base_version]));
        all.onerror = () => reject(all.error);
      };
      open.onerror = () => reject(open.error);
    }));
    assert.deepEqual(kept.sort(), [["change_amount", 1], ["set_preference", 1]], "both intents are in IndexedDB, based on version 1");
    await accessible(laptop, "the deal with pending changes");
    await shot(laptop, "offline-pending");

    // Meanwhile her phone, online, raises the amount.
    const phone = await signIn("alice");
    await card(phone, "Prospecting", "Train deal").getByRole("link", { name: "Train deal" }).click();
    await phone.getByRole("button", { name: "Edit details" }).click();
    await phone.getByRole("form", { name: "Deal details" }).getByLabel("Amount (EUR)").fill("12000.00");
    await phone.getByRole("form", { name: "Deal details" }).getByRole("button", { name: "Save", exact: true }).click();
    await phone.getByTestId("deal-amount").filter({ hasText: "12,000.00 EUR" }).waitFor();

    // Back online, the laptop syncs by itself: the next step applies, the amount needs review.
    await laptop.context().setOffline(false);
    const report = laptop.getByTestId("sync-report");
    await report.waitFor({ timeout: 30_000 });
    assert.match(await report.locator("summary").textContent(), /1 applied, 1 needs review/);
    await laptop.getByTestId("pending").first().waitFor({ state: "detached" });
    await laptop.getByTestId("deal-next-step").filter({ hasText: "Call the fleet manager" }).waitFor();
    assert.equal((await laptop.getByTestId("deal-amount").textContent()).trim(), "12,000.00 EUR", "money is never merged silently");

    // The review shows the base and both sides; Alice keeps hers.
    await laptop.getByRole("link", { name: "Reviews" }).click();
    const review = laptop.getByTestId("review").filter({ hasText: "Train deal" });
    await review.waitFor();
    assert.deepEqual(
      [await review.getByTestId("base").textContent(), await review.getByTestId("theirs").textContent(), await review.getByTestId("mine").textContent()],
      ["10,000.00 EUR", "12,000.00 EUR", "9,000.00 EUR"],
    );
    await accessible(laptop, "the reviews");
    await shot(laptop, "reviews");
    await review.getByRole("button", { name: "Keep mine" }).click();
    await laptop.getByRole("status").filter({ hasText: "Resolved: Train deal, amount." }).waitFor();
    await review.waitFor({ state: "detached" });
    await laptop.getByRole("link", { name: "Pipeline" }).click();
    await card(laptop, "Prospecting", "Train deal").getByRole("link", { name: "Train deal" }).click();
    await laptop.getByTestId("deal-amount").filter({ hasText: "9,000.00 EUR" }).waitFor();
    await phone.context().close();
    await laptop.context().close();
  });
});

async function command(config, token, path, body) {
  const response = await fetch(config.command_api + path, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.ok(response.ok, `${path}: ${response.status} ${await response.clone().text()}`);
  return response.json();
}

