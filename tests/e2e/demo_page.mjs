// Drives the demo page in Debian's headless Chromium with playwright-core (from tools/node_modules).
// Usage: node demo_page.mjs BASE_URL ARTIFACTS_DIR PROFILE_DIR [batch|resume|resume-empty]
// PROFILE_DIR: an empty directory, Chromium's fresh --user-data-dir (the test's tmp_path).
// Talks to the pytest test in JSON lines: it prints {"step": ...} when a step is done, and after
// "paused" waits for one line on stdin, so the test can look at the server before the page goes on.

import { createRequire } from "node:module";
import path from "node:path";
import readline from "node:readline";

const require = createRequire(new URL("../../tools/package.json", import.meta.url));
const { chromium } = require("playwright-core");

const [baseUrl, artifacts, profile, mode = "batch"] = process.argv.slice(2);
const WAIT_MS = 10_000;
const lines = readline.createInterface({ input: process.stdin });
const input = lines[Symbol.asyncIterator]();

function report(step, data = {}) {
  process.stdout.write(`${JSON.stringify({ step, ...data })}\n`);
}

async function nextCommand() {
  const { value, done } = await input.next();
  return done ? "" : value.trim();
}

const readPage = (page) =>
  page.evaluate(() => ({
    bars: [...document.querySelectorAll("#batch-list li")].map((li) => ({
      name: li.querySelector("label").textContent,
      value: li.querySelector("progress").value,
      max: li.querySelector("progress").max,
      status: li.dataset.status || "",
    })),
    overall: { value: document.querySelector("#batch-progress").value, max: document.querySelector("#batch-progress").max },
    feed: [...document.querySelectorAll("#feed-list li")].map((li) => ({
      kind: li.dataset.kind,
      sequence: Number(li.dataset.sequence),
      text: li.textContent,
    })),
    files: [...document.querySelectorAll("#files-body tr")].map((tr) => ({
      name: tr.querySelector("label").textContent,
      status: tr.querySelector(".status").textContent,
    })),
    errors: Object.fromEntries(
      [...document.querySelectorAll(".error")].map((region) => [region.id, region.hidden ? "" : region.textContent]),
    ),
  }));

async function upload(page, files) {
  await page.setInputFiles("#upload-input", files);
  await page.getByRole("button", { name: "Upload", exact: true }).click();
}

const feedHas = (page, count) =>
  page.waitForFunction((wanted) => document.querySelectorAll("#feed-list li").length >= wanted, count);

async function pause(page) {
  await page.getByRole("button", { name: "Pause" }).click();
  await page.waitForSelector('#feed-state[data-state="paused"]');
  report("paused");
}

/** Upload two files, process them, show two errors, then pause the feed. */
async function batchFlow(page) {
  // the server refuses a file over its upload limit (the test sets it low): the page says why
  await upload(page, [{ name: "big.bin", mimeType: "application/octet-stream", buffer: Buffer.alloc(8192, 1) }]);
  await page.waitForSelector("#files-error:not([hidden])");
  report("upload-error", await readPage(page));

  await upload(page, [
    { name: "alpha.txt", mimeType: "text/plain", buffer: Buffer.from("one\ntwo\nthree\n") },
    { name: "beta.csv", mimeType: "text/csv", buffer: Buffer.from("a,b\n1,2") },
  ]);
  await page.waitForFunction(() => document.querySelectorAll("#files-body tr").length === 2);
  await page.getByRole("button", { name: "Process 2 selected" }).click();
  await page.waitForFunction(
    () => [...document.querySelectorAll("#batch-list progress")].filter((bar) => bar.value === bar.max).length === 2,
  );
  await feedHas(page, 4);
  await page.waitForSelector("#batch-summary:has-text('Done')");
  const screenshot = path.join(artifacts, "demo-page.png");
  await page.screenshot({ path: screenshot, fullPage: true });
  report("processed", { ...(await readPage(page)), screenshot });

  // an end event with an error status is shown: the batch's request is made invalid on its way out
  await page.route("**/ProcessFiles?*", (route) => {
    const url = new URL(route.request().url());
    url.searchParams.set("message", JSON.stringify({ fileIds: [""] }));
    return route.continue({ url: url.toString() });
  });
  await page.getByRole("button", { name: "Process 2 selected" }).click();
  await page.waitForSelector("#batch-error:not([hidden])");
  await page.unroute("**/ProcessFiles?*");
  report("batch-error", await readPage(page));

  // pausing the feed closes its EventSource while the page stays open
  await pause(page);
  await nextCommand();
}

/** Upload one file, pause the feed; once the test has uploaded another, resume and show both. */
async function resumeFlow(page) {
  await upload(page, [{ name: "first.txt", mimeType: "text/plain", buffer: Buffer.from("first\n") }]);
  await feedHas(page, 1);
  await pause(page);
  await nextCommand(); // the test uploaded a file while the feed was paused
  await page.getByRole("button", { name: "Resume" }).click();
  await feedHas(page, 2);
  await page.waitForFunction(() => document.querySelectorAll("#files-body tr").length === 2);
  report("resumed", await readPage(page));
}

/** On an empty server, pause the feed before any event; once the test has uploaded a file, resume and
 * show it (the feed started after sequence 0, which means "from the first event", not "from now"). */
async function resumeEmptyFlow(page) {
  await pause(page);
  await nextCommand(); // the test uploaded a file while the feed was paused
  await page.getByRole("button", { name: "Resume" }).click();
  await feedHas(page, 1);
  report("resumed", await readPage(page));
}

const FLOWS = { batch: batchFlow, resume: resumeFlow, "resume-empty": resumeEmptyFlow };

async function main() {
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    // the closed network refuses Chromium's own background connections: ask for none
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1200, height: 900 },
  });
  try {
    context.setDefaultTimeout(WAIT_MS);
    const page = context.pages()[0] || (await context.newPage());
    const pageErrors = []; // uncaught exceptions in the page's scripts
    page.on("pageerror", (error) => pageErrors.push(String(error)));

    await page.goto(`${baseUrl}/`);
    await page.waitForSelector('#feed-state[data-state="live"]');
    report("live");
    await FLOWS[mode](page);
    report("done", { pageErrors });
  } finally {
    lines.close();
    await context.close();
  }
}

main().catch((error) => {
  report("failed", { error: String(error && error.stack ? error.stack : error) });
  process.exitCode = 1;
});
