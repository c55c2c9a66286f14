// The README's screenshots, taken from a running Tidemark with the demo data (infra/up):
//   npm run screenshots [-- http://127.0.0.1:8083]
// Writes docs/console-*.png.
import { chromium } from "playwright-core";

const console = process.argv[2] ?? "http://127.0.0.1:8083";
const docs = new URL("../../../docs/", import.meta.url).pathname;
const browser = await chromium.launch({
  executablePath: process.env.TIDEMARK_CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

async function as(user, hash, name, ready) {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  await page.goto(console);
  await page.getByRole("button", { name: new RegExp(`^${user}\\b`) }).click();
  await page.getByTestId("user").waitFor();
  await page.goto(`${console}/${hash}`);
  await ready(page);
  await page.screenshot({ path: `${docs}console-${name}.png` });
  return page;
}

const board = await as("alice", "#/board", "board", (p) => p.getByTestId("card").first().waitFor());
const deal = await board.locator('section.column[data-stage="Negotiation"] a.card-name').first().getAttribute("href");
await as("alice", deal, "opportunity", (p) => p.getByTestId("deal-amount").waitFor());
await as("mia", "#/approvals", "approvals", (p) => p.getByTestId("approval").first().waitFor());
await as("fiona", "#/forecast", "forecast", (p) => p.getByTestId("forecast-row").first().waitFor());
const id = deal.split("/").pop();
await as("audrey", `#/lineage/opportunity/${id}/amount`, "lineage", (p) => p.getByTestId("lineage-event").first().waitFor());
await browser.close();
