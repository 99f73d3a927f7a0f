// End-to-end test of the web page in headless Chromium (issue 9): starts the real
// binary on a fresh data folder, drives the page like a person, and saves a screenshot
// of every step under target/screenshots/. Exits non-zero on the first failed check.
//
//   node tests/browser/page.mjs            (scripts/test.sh installs chromium and playwright-core)
//
// Env: LUMAGATE_BIN (default target/debug/lumagate), CHROMIUM (default /usr/bin/chromium).

import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, openSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import net from "node:net";

const root = resolve(new URL("../..", import.meta.url).pathname);
const require = createRequire(join(root, "target/node/"));
const { chromium } = require("playwright-core");

const BIN = process.env.LUMAGATE_BIN || join(root, "target/debug/lumagate");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SHOTS = join(root, "target/screenshots");
const ADMIN = "browser-admin-token-0123456789";
const COMPLETION_MS = 120_000;

mkdirSync(SHOTS, { recursive: true });
const data = mkdtempSync(join(tmpdir(), "lumagate-browser-"));
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("LUMAGATE_")));
Object.assign(env, {
  LUMAGATE_ADMIN_TOKEN: ADMIN,
  LUMAGATE_SANDBOX_DELAY_MS: "1500",
  LUMAGATE_SANDBOX_SLOTS: "3",
});

let server;
let browser;
let step = 0;

function check(condition, message) {
  if (!condition) throw new Error("check failed: " + message);
}

async function shot(page, name) {
  step += 1;
  const file = join(SHOTS, `${String(step).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`  screenshot ${file}`);
}

function freePort() {
  return new Promise((ok, fail) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => ok(port)); });
    s.on("error", fail);
  });
}

function cli(...args) {
  return execFileSync(BIN, [...args, "--data-dir", data], { env, encoding: "utf8" });
}

async function startServer() {
  const port = await freePort();
  const log = openSync(join(data, "server.log"), "a");
  server = spawn(BIN, ["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", data], { env, stdio: ["ignore", log, log] });
  const origin = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    try { if ((await fetch(origin + "/readyz")).ok) return origin; } catch (_) { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("lumagate did not become ready");
}

/** Waits until the card shows `state` for the task it follows; returns the task id. */
async function waitState(page, state) {
  await page.waitForFunction((s) => document.querySelector("#current")?.dataset.state === s, state, { timeout: COMPLETION_MS });
  return page.$eval("#current", (c) => c.dataset.id);
}

/** The video element has data (readyState >= 2) and its clock advances while playing. */
async function assertPlays(page) {
  await page.waitForFunction(() => { const v = document.querySelector("#cur-video"); return v && !v.hidden && v.readyState >= 2; },
    null, { timeout: 30_000 });
  const t0 = await page.$eval("#cur-video", (v) => { v.play(); return v.currentTime; });
  await page.waitForFunction((t) => document.querySelector("#cur-video").currentTime > t + 0.3, t0, { timeout: 15_000 });
  const info = await page.$eval("#cur-video", (v) => ({ rs: v.readyState, t: v.currentTime, w: v.videoWidth, h: v.videoHeight }));
  check(info.rs >= 2 && info.t > t0 && info.w > 0 && info.h > 0, "the video plays: " + JSON.stringify(info));
  return info;
}

async function main() {
  const created = cli("keys", "create", "--name", "browser", "--tiers", "relax,pro");
  const secret = created.trim().split("\n").pop().trim();
  const origin = await startServer();
  console.log(`lumagate at ${origin}, data in ${data}`);

  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required"] });
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  const consoleErrors = [];
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  page.on("dialog", (d) => d.accept());
  await page.goto(origin + "/");
  await shot(page, "empty");

  console.log("an invalid key shows the API's error");
  await page.fill("#key", "lg-not-a-real-key");
  await page.click("#key-form button");
  await page.fill("#prompt", "this should be refused");
  await page.click("#submit");
  await page.waitForSelector("#error:not([hidden])");
  const refused = await page.textContent("#error");
  check(refused.includes("401") && refused.includes("invalid or revoked API key"), "the 401 detail is shown: " + refused);
  await shot(page, "invalid-key");

  console.log("a text task completes and plays");
  await page.fill("#key", secret);
  await page.click("#key-form button");
  await page.fill("#prompt", "a Tesla speeding along a highway");
  await page.selectOption("#aspect", "16:9");
  await page.click("#submit");
  await page.waitForSelector("#current:not([hidden])");
  check(await page.$eval("#error", (e) => e.hidden), "no error after a good submit");
  await shot(page, "text-submitted");
  const textId = await waitState(page, "completed");
  const textPlay = await assertPlays(page);
  check(textPlay.w === 1280 && textPlay.h === 720, "16:9 720p video: " + JSON.stringify(textPlay));
  const href = await page.getAttribute("#cur-download", "href");
  check(href && href.includes("/files/"), "download link present: " + href);
  const download = await fetch(href);
  check(download.ok && (download.headers.get("content-disposition") || "").includes("attachment"), "download answers an attachment");
  await shot(page, "text-completed");

  console.log("an image task (start image picked from a file) completes and plays");
  const thumb = await page.$eval("#cur-video", (v) => v.poster);
  const picture = Buffer.from(await (await fetch(thumb)).arrayBuffer());
  const picturePath = join(data, "start.jpg");
  writeFileSync(picturePath, picture);
  await page.fill("#prompt", "the same road at night");
  await page.selectOption("#tier", "pro");
  await page.selectOption("#aspect", "1:1");
  await page.setInputFiles("#start-image", picturePath);
  await page.waitForSelector("#drop-start img:not([hidden])");
  await page.click("#submit");
  await page.waitForFunction((old) => document.querySelector("#current").dataset.id !== old, textId);
  await shot(page, "image-submitted");
  const imageId = await waitState(page, "completed");
  const imagePlay = await assertPlays(page);
  check(imagePlay.w === 720 && imagePlay.h === 720, "1:1 video: " + JSON.stringify(imagePlay));
  await shot(page, "image-completed");

  console.log("one click extends the video");
  await page.click("#drop-start .clear");
  await page.fill("#prompt", "");
  await page.click("#cur-extend");
  await page.waitForFunction((old) => document.querySelector("#current").dataset.id !== old, imageId);
  const meta = await page.textContent("#cur-meta");
  check(meta.includes("extends " + imageId.slice(0, 8)), "the new task extends the last one: " + meta);
  await shot(page, "extend-submitted");
  await waitState(page, "completed");
  const extendPlay = await assertPlays(page);
  const duration = await page.$eval("#cur-video", (v) => v.duration);
  check(duration > 9, "the extended video holds the parent's footage and the new segment: " + duration);
  check(extendPlay.w === 720, "extend keeps the parent's shape");
  await shot(page, "extend-completed");

  console.log("earlier tasks are listed with thumbnails");
  await page.click("#refresh-history");
  await page.waitForFunction(() => document.querySelectorAll("#history li[data-state=completed] img").length >= 3);
  await page.waitForFunction(() => [...document.querySelectorAll("#history img")].every((i) => i.complete && i.naturalWidth > 0));
  await shot(page, "history");

  console.log("the page fits a phone screen");
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, "no horizontal scrolling on a phone: " + overflow + " px too wide");
  await shot(page, "phone");
  await page.setViewportSize({ width: 1100, height: 900 });

  console.log("the operator view lists accounts and revokes a key");
  await page.click("#tab-ops");
  await page.fill("#admin-token", "wrong-token");
  await page.click("#admin-form button");
  await page.waitForSelector("#ops-error:not([hidden])");
  check((await page.textContent("#ops-error")).includes("invalid admin token"), "a wrong admin token shows the API's error");
  await page.fill("#admin-token", ADMIN);
  await page.click("#admin-form button");
  await page.waitForSelector("#accounts tbody tr[data-id=sandbox]");
  check(await page.$eval("#ops-error", (e) => e.hidden), "no error with the admin token");
  const health = await page.textContent("#accounts tbody tr[data-id=sandbox] td:nth-child(2)");
  check(health.trim() === "enabled", "the sandbox account is healthy: " + health);
  check((await page.textContent("#queue-summary")).includes("relax waiting: 0"), "the queue is shown");
  await page.fill("#new-key-name", "to-revoke");
  await page.click("#key-create button");
  await page.waitForSelector("#new-key-secret:not([hidden])");
  const newSecret = await page.$eval("#new-key-secret", (e) => e.dataset.secret);
  check((await fetch(origin + "/luma/generations", { headers: { Authorization: "Bearer " + newSecret } })).status === 200, "the new key works");
  const row = await page.waitForSelector("#keys tbody tr:has(td:text-is('to-revoke'))");
  const keyId = await row.getAttribute("data-id");
  await shot(page, "operators");
  await page.click(`#keys tbody tr[data-id="${keyId}"] button.revoke`);
  await page.waitForSelector(`#keys tbody tr[data-id="${keyId}"] td.revoked`);
  const after = await fetch(origin + "/luma/generations", { headers: { Authorization: "Bearer " + newSecret } });
  check(after.status === 401, "the revoked key is refused: " + after.status);
  await shot(page, "key-revoked");

  check(consoleErrors.length === 0, "no script errors: " + consoleErrors.join("; "));
  console.log("browser test passed");
}

let failed = false;
try {
  await main();
} catch (e) {
  failed = true;
  console.error(e);
  try {
    console.error("---- server log ----\n" + execFileSync("tail", ["-n", "60", join(data, "server.log")], { encoding: "utf8" }));
  } catch (_) { /* no log */ }
} finally {
  if (browser) await browser.close().catch(() => {});
  if (server) server.kill("SIGKILL");
  if (!failed) rmSync(data, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
