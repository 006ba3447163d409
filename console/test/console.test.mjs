// The console in a real browser (Debian's Chromium through playwright-core) against a real
// mosquitto (the example ACL, a ws:// listener) and three real roomrecd on test sources.
// Needs dist/ built (`npx vite build`) and target/debug/roomrecd and roomrecctl (`cargo build
// --bins`), or ROOMRECD=path (roomrecctl beside it). CONSOLE_SCREENSHOTS=dir writes the
// screenshots of the views there (docs/console).

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, writeFileSync, readFileSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import { Harness, FIXTURE_SEED, PASSWORD, consoleDir, publicKeyOf, repoDir } from "./harness.mjs";

const ROOMRECD = process.env.ROOMRECD ?? path.join(repoDir, "target/debug/roomrecd");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const DEVICES = ["room-1", "room-2", "room-3"];
/** Hostile "devices": accounts that publish on their own prefix, as any device account could. */
const FAKES = ["fake-html", "fake-bytes"];
const WAIT_MS = 30000;
const shots = process.env.CONSOLE_SCREENSHOTS;

const h = new Harness();
let browser;
let page;
const pageErrors = [];

/** Waits until `fn(arg)` is truthy in the page; on timeout says what was awaited and shows the page. */
async function waitFor(what, fn, arg) {
  try {
    return await page.waitForFunction(fn, arg, { timeout: WAIT_MS, polling: 100 });
  } catch (e) {
    const text = await page.evaluate(() => document.body.innerText).catch(() => "?");
    throw new Error(`waiting for ${what}: ${e.message}\n--- page text ---\n${text}`);
  }
}

const rowAttr = (id, attr) => page.locator(`tr[data-device="${id}"]`).getAttribute(attr);
const cellText = (id, cls) => page.locator(`tr[data-device="${id}"] td.${cls}`).textContent();

/** Clicks a command button in the device view as `actor`; returns the command log entry's id. */
async function command(actor, label, target = "") {
  await page.fill("#device input.actor", actor);
  await page.selectOption("#device select.target", target);
  const before = await page.locator("#device .command-log li").count();
  await page.click(`#device button[data-label="${label}"]`);
  await waitFor(`a log entry for ${label}`, (n) => document.querySelectorAll("#device .command-log li").length > n, before);
  return page.locator("#device .command-log li").first().getAttribute("data-command-id");
}

/** Waits for the reply to command `id` and returns its class (ok, refused, failed) and text. */
async function outcome(id) {
  const sel = `#device .command-log li[data-command-id="${id}"]`;
  await waitFor(`the reply to ${id}`, (s) => {
    const li = document.querySelector(s);
    return li && !li.classList.contains("pending");
  }, sel);
  return { cls: await page.locator(sel).getAttribute("class"), text: await page.locator(sel).textContent() };
}

describe("admin console in Chromium", () => {
  before(async () => {
    assert.ok(existsSync(ROOMRECD), `${ROOMRECD} is missing: run cargo build --bins first`);
    assert.ok(existsSync(path.join(consoleDir, "dist/index.html")), "console/dist is missing: run npx vite build first");
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: scripts/install-deps installs chromium`);
    await h.startBroker([...DEVICES, ...FAKES, "admin-console", "svc-meeting", "svc-licence", "fleet-sim"]);
    for (const id of DEVICES) h.startDevice(id, ROOMRECD);
    // As the services do: a licence and a meeting (host u-1), retained, for every device.
    const licence = await h.client("svc-licence");
    const meeting = await h.client("svc-meeting");
    for (const id of DEVICES) {
      await licence.publishAsync(`roomrec/v1/${id}/licence`, JSON.stringify({ kind: "rooms", valid_until: "2099-01-01T00:00:00Z" }), { qos: 1, retain: true });
      await meeting.publishAsync(`roomrec/v1/${id}/meeting`, JSON.stringify({
        version: 1, meeting_id: `m-${id}`, state: "active", creator: "u-1", host: "u-1", cohosts: ["u-2"],
        participants: ["u-1", "u-2", "u-3"], sharing: false,
        account: { tier: "business", licence_expires_at: "2099-01-01T00:00:00Z", cloud_quota_bytes: null, cloud_used_bytes: 0 },
      }), { qos: 1, retain: true });
    }
    const url = await h.serve(path.join(consoleDir, "dist"));
    const profile = mkdtempSync(path.join(h.dir, "chromium-"));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 860 },
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    page = browser.pages()[0] ?? (await browser.newPage());
    page.on("pageerror", (e) => pageErrors.push(`pageerror: ${e.message}`));
    page.on("dialog", (d) => { pageErrors.push(`dialog: ${d.message()}`); void d.dismiss(); });
    await page.goto(`${url}?broker=${encodeURIComponent(`ws://127.0.0.1:${h.wsPort}/`)}&user=admin-console&admin=ops`);
    await page.fill("#broker-password", PASSWORD);
    await page.click("#connect-button");
  });

  after(async () => {
    await browser?.close();
    if (process.env.CONSOLE_KEEP) console.log(`kept ${h.dir}`);
    await h.stop();
  });

  it("lists the three devices online, idle in their meeting", async () => {
    await waitFor("three devices online", (ids) =>
      ids.every((id) => document.querySelector(`tr[data-device="${id}"]`)?.dataset.online === "online"), DEVICES);
    for (const id of DEVICES) {
      assert.equal(await cellText(id, "recording"), "idle (cloud unavailable)");
      assert.match(await cellText(id, "version"), /^\d+\.\d+\.\d+/);
    }
    assert.match(await page.locator("#fleet-count").textContent(), /^3 devices, 3 online/);
  });

  it("shows hostile retained messages as text or garbage and runs no script", async () => {
    const html = await h.client("fake-html");
    await html.publishAsync("roomrec/v1/fake-html/status", JSON.stringify({
      online: true, version: "<img src=x onerror=\"window.__pwned=1;alert(1)\">", camera: "<b>ok</b>", microphone: "ok",
      alarms: [{ id: "mic_silent", severity: "critical", since: "2026-01-01T00:00:00Z", message: "<script>window.__pwned=2</script>silent" }],
    }), { qos: 1, retain: true });
    const bytes = await h.client("fake-bytes");
    await bytes.publishAsync("roomrec/v1/fake-bytes/status", Buffer.from([0xff, 0xfe, 0x3c, 0x73, 0x00, 0x7b]), { qos: 1, retain: true });
    await bytes.publishAsync("roomrec/v1/fake-bytes/state", "{\"local\": \"<svg onload=alert(3)>\"", { qos: 1, retain: true });
    await waitFor("the hostile devices", () =>
      document.querySelector('tr[data-device="fake-html"] td.version')?.textContent?.includes("onerror") &&
      document.querySelector('tr[data-device="fake-bytes"]')?.classList.contains("garbage"));
    assert.equal(await cellText("fake-html", "version"), "<img src=x onerror=\"window.__pwned=1;alert(1)\">");
    assert.equal(await cellText("fake-html", "alarms"), "critical: <script>window.__pwned=2</script>silent");
    assert.match(await cellText("fake-bytes", "alarms"), /^reporting garbage \(status: payload is not UTF-8; state: payload is not JSON\)$/);
    assert.equal(await rowAttr("fake-bytes", "data-online"), "unknown");
    assert.equal(await page.locator("#fleet-table img, #fleet-table script, #fleet-table svg, #fleet-table b").count(), 0);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    // Alarms first: the device with a critical alarm heads the table, then the garbage.
    const order = await page.locator("#fleet-body tr").evaluateAll((rows) => rows.map((r) => r.dataset.device));
    assert.deepEqual(order.slice(0, 2), ["fake-html", "fake-bytes"]);
    // The filter narrows, and clearing it shows all again.
    await page.fill("#filter", "garbage");
    assert.deepEqual(await page.locator("#fleet-body tr:not([hidden])").evaluateAll((r) => r.map((x) => x.dataset.device)), ["fake-bytes"]);
    await page.fill("#filter", "");
    assert.equal(await page.locator("#fleet-body tr:not([hidden])").count(), 5);
  });

  it("signs admin commands with the key from a file; a participant's start records", async () => {
    const keyFile = path.join(h.dir, "admin.key");
    // As `roomrecctl key gen` writes it: comment lines, then the seed.
    writeFileSync(keyFile, `# roomrec Ed25519 signing key; keep it secret (mode 0600).\n# public key: ${publicKeyOf(FIXTURE_SEED)}\n${FIXTURE_SEED}\n`, { mode: 0o600 });
    await page.setInputFiles("#key-file", keyFile);
    await waitFor("the key loaded", () => document.getElementById("key-status")?.textContent?.startsWith("key loaded"));
    await page.click('tr[data-device="room-1"] button');
    await waitFor("the device view", () => !document.getElementById("device").hidden);

    const status = await outcome(await command("admin:ops", "status"));
    assert.equal(status.cls, "ok", status.text);
    assert.match(status.text, /status as admin:ops \(signed\): ok$/);

    const adminStart = await outcome(await command("admin:ops", "start", "local"));
    assert.equal(adminStart.cls, "refused", adminStart.text);
    assert.match(adminStart.text, /refused: forbidden: admin:ops cannot start/);

    const start = await outcome(await command("u-1", "start", "local"));
    assert.equal(start.cls, "ok", start.text);
    assert.match(start.text, /start as u-1 \(not signed\): ok$/);
    await waitFor("room-1 recording in the device view", () => /local recording/.test(document.querySelector("#device .summary")?.textContent ?? ""));
    // The device really records: its segments appear on disk.
    const segments = path.join(h.dir, "room-1/storage/segments");
    const deadline = Date.now() + WAIT_MS;
    while (!(existsSync(segments) && execFileSync("find", [segments, "-name", "*.ts"]).length > 0)) {
      assert.ok(Date.now() < deadline, `no segment under ${segments}\n${h.log("room-1").slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }

    const list = await outcome(await command("admin:ops", "list recordings"));
    assert.equal(list.cls, "ok", list.text);
    const listed = await page.locator("#device .recording-table tbody tr").allTextContents();
    assert.equal(listed.length, 1, listed.join("\n"));
    assert.match(listed[0], /local.*recording.*u-1/);
  });

  it("shows a command signed with a wrong key refused with its reason", async () => {
    const wrong = path.join(h.dir, "wrong.key");
    execFileSync(path.join(path.dirname(ROOMRECD), "roomrecctl"), ["key", "gen", "--out", wrong]);
    await page.setInputFiles("#key-file", wrong);
    await waitFor("the wrong key loaded", () => document.getElementById("key-status")?.textContent?.includes("wrong.key"));
    const bad = await outcome(await command("admin:ops", "status"));
    assert.equal(bad.cls, "refused", bad.text);
    assert.match(bad.text, /refused: forbidden \(bad_signature\): /);
    const unknown = await outcome(await command("admin:nobody", "status"));
    assert.match(unknown.text, /refused: forbidden \(unknown_key\): /);
    // A file that is no key is refused at loading, and the previous key is dropped.
    const junk = path.join(h.dir, "junk.key");
    writeFileSync(junk, "<script>alert(4)</script>");
    await page.setInputFiles("#key-file", junk);
    await waitFor("the junk refused", () => document.getElementById("key-status")?.className === "error");
    const unsigned = await outcome(await command("admin:ops", "status"));
    assert.equal(unsigned.cls, "failed");
    assert.match(unsigned.text, /load the admin key file first/);
  });

  it("shows the recording device's own picture and level meter, and another's shapes and garbage", async () => {
    // room-1 records (above): its own preview (a 320x240 JPEG of its 320x240 stream) and its
    // levels (the test tone: peak -1.9, RMS -4.9 dBFS) reach the page through the broker.
    await waitFor("room-1's own preview decoded", () => {
      const img = document.querySelector("#device img.preview");
      return img && !img.hidden && img.complete && img.naturalWidth === 320 && img.naturalHeight === 240;
    });
    await waitFor("room-1's own level", () =>
      /peak -1\.9 \/ rms -4\.9 dBFS/.test(document.querySelector("#device .meter-row")?.textContent ?? ""));
    // The right key again, after the junk: signed commands work once more.
    await page.setInputFiles("#key-file", path.join(h.dir, "admin.key"));
    await waitFor("the key reloaded", () => document.getElementById("key-status")?.textContent?.startsWith("key loaded from admin.key"));
    const again = await outcome(await command("admin:ops", "status"));
    assert.equal(again.cls, "ok", again.text);
    if (shots) {
      mkdirSync(shots, { recursive: true });
      await page.screenshot({ path: path.join(shots, "device.png"), fullPage: true });
    }

    // room-2 is idle, so nothing of its own interferes: as room-2's own account (the ACL lets
    // a device write its preview and levels), a two-channel meter and a picture of another
    // size, then garbage on a topic of a good device, which marks it until a good message.
    await page.click("#device button.back");
    await page.click('tr[data-device="room-2"] button');
    await waitFor("room-2's view", () => document.querySelector("#device h2")?.textContent?.includes("room-2") ?? false);
    const dev = await h.client("room-2");
    const jpeg = path.join(h.dir, "preview.jpg");
    execFileSync("gst-launch-1.0", ["-q", "videotestsrc", "num-buffers=1", "pattern=smpte", "!", "video/x-raw,width=320,height=180", "!", "jpegenc", "!", "filesink", `location=${jpeg}`]);
    await dev.publishAsync("roomrec/v1/room-2/preview", readFileSync(jpeg), { qos: 1, retain: true });
    await dev.publishAsync("roomrec/v1/room-2/levels", JSON.stringify({ peak_dbfs: [-12.5, -30], rms_dbfs: [-21, -42] }), { qos: 0 });
    await waitFor("room-2's picture decoded", () => {
      const img = document.querySelector("#device img.preview");
      return img && !img.hidden && img.complete && img.naturalWidth === 320 && img.naturalHeight === 180;
    });
    await waitFor("two meters", () => document.querySelectorAll("#device .meter-row").length === 2);
    assert.match(await page.locator("#device .meter-row").first().textContent(), /peak -12\.5 \/ rms -21\.0 dBFS/);
    await dev.publishAsync("roomrec/v1/room-2/levels", "not json", { qos: 0 });
    await waitFor("room-2 garbage note", () => !document.querySelector("#device .garbage-note").hidden);
    await dev.publishAsync("roomrec/v1/room-2/levels", JSON.stringify({ peak_dbfs: -6, rms_dbfs: -15 }), { qos: 0 });
    await waitFor("room-2 garbage cleared", () => document.querySelector("#device .garbage-note").hidden);
  });

  it("shows a killed daemon offline (its last will) and the recording in the fleet", async () => {
    await page.click("#device button.back");
    h.kill("room-3", "SIGKILL");
    await waitFor("room-3 offline", () => document.querySelector('tr[data-device="room-3"]')?.dataset.online === "offline");
    assert.equal(await rowAttr("room-2", "data-online"), "online");
    assert.match(await cellText("room-1", "recording"), /^local recording/);
    assert.match(await page.locator("#fleet-count").textContent(), /^5 devices, 3 online/);
    if (shots) await page.screenshot({ path: path.join(shots, "fleet.png"), fullPage: true });
    assert.deepEqual(pageErrors, []);
  });

  it("stays usable with 200 devices: rows are updated in place, not rebuilt", async () => {
    const sim = await h.client("fleet-sim");
    const ids = Array.from({ length: 200 }, (_, i) => `sim-${String(i).padStart(3, "0")}`);
    const t0 = Date.now();
    await Promise.all(ids.map((id) => sim.publishAsync(`roomrec/v1/${id}/status`,
      JSON.stringify({ online: true, version: "0.1.0", camera: "ok", microphone: "ok" }), { qos: 1, retain: true })));
    await waitFor("205 rows", () => document.querySelectorAll("#fleet-body tr").length === 205);
    const listed = Date.now() - t0;
    await page.evaluate(() => document.querySelectorAll("#fleet-body tr").forEach((r) => { r.dataset.tag = "first"; }));
    // Rounds of 200 state messages, each awaited on the page: a burst of more than
    // mosquitto's max_queued_messages (1000) for one client would be dropped by the broker.
    const rounds = 10;
    const t1 = Date.now();
    for (let n = 1; n <= rounds; n++) {
      await Promise.all(ids.map((id) => sim.publishAsync(`roomrec/v1/${id}/state`, JSON.stringify({
        meeting_id: "m-sim", cloud: { state: "idle" }, local: [{ recording_id: "r-1", owner: "u-1", state: "recording", recorded_ms: n * 1000 }],
      }), { qos: 1 })));
      await waitFor(`every simulated device at round ${n}`, (last) =>
        [...document.querySelectorAll('#fleet-body tr[data-device^="sim-"] td.recording')].every((td) => td.textContent === last),
        `local recording ${n} s`);
    }
    const updated = Date.now() - t1;
    console.log(`# 200 devices: listed in ${listed} ms; ${rounds} rounds of 200 state messages shown in ${updated} ms (${(updated / rounds).toFixed(0)} ms a round)`);
    assert.equal(await page.locator("#fleet-body tr[data-tag=first]").count(), 205, "rows were rebuilt instead of updated");
    await page.fill("#filter", "sim-01");
    assert.equal(await page.locator("#fleet-body tr:not([hidden])").count(), 10);
    await page.fill("#filter", "");
    // Sorted by name after the alarms, garbage and offline devices; the filter cleared.
    const order = await page.locator("#fleet-body tr").evaluateAll((rows) => rows.map((r) => r.dataset.device));
    assert.deepEqual(order.slice(0, 6), ["fake-html", "fake-bytes", "room-3", "room-1", "room-2", "sim-000"]);
    assert.deepEqual(pageErrors, []);
  });

  it("shows a finished recording's completeness report in the device view", async () => {
    // room-1 has recorded locally since the third test; past the 10 s minimum (L4) it is kept.
    await page.click('tr[data-device="room-1"] button');
    await waitFor("room-1's view", () => document.querySelector("#device h2")?.textContent === "room-1");
    await waitFor("11 s recorded", () => {
      try {
        return JSON.parse(document.querySelector("#device pre")?.textContent ?? "").local[0].recorded_ms >= 11000;
      } catch {
        return false;
      }
    });
    // The meeting service ends room-1's meeting: the local recording stops and is converted (L5).
    const meeting = await h.client("svc-meeting");
    await meeting.publishAsync("roomrec/v1/room-1/meeting", JSON.stringify({
      version: 2, meeting_id: "m-room-1", state: "ended", creator: "u-1", host: "u-1", cohosts: ["u-2"],
      participants: [], sharing: false,
      account: { tier: "business", licence_expires_at: "2099-01-01T00:00:00Z", cloud_quota_bytes: null, cloud_used_bytes: 0 },
    }), { qos: 1, retain: true });
    await waitFor("conversion_done among the events", () =>
      [...document.querySelectorAll("#device .events li strong")].some((s) => s.textContent === "conversion_done"));
    const list = await outcome(await command("admin:ops", "list recordings"));
    assert.equal(list.cls, "ok", list.text);
    await waitFor("the report in the recordings table", () =>
      /of/.test(document.querySelector("#device .recording-table td.completeness")?.textContent ?? ""));
    const text = await page.locator("#device .recording-table td.completeness").first().textContent();
    // The test tone is never silent; nothing paused it.
    const m = /^(\d+\.\d) s of (\d+\.\d) s · 0 % silent$/.exec(text);
    assert.ok(m, text);
    assert.ok(Number(m[1]) >= 10 && Number(m[1]) <= Number(m[2]), text);
    if (shots) await page.screenshot({ path: path.join(shots, "device-report.png"), fullPage: true });
    assert.deepEqual(pageErrors, []);
  });
});
