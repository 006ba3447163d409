// The console in a real browser (Debian's Chromium through playwright-core) against a real
// mosquitto (the example ACL, a ws:// listener), four real roomrecd on test sources and a real
// S3 server (s3s-fs, scripts/install-s3s-fs) that one of them uploads its cloud recording to.
// Needs dist/ built (`npx vite build`) and target/debug/roomrecd and roomrecctl built with the
// test builds' `fault-injection` feature (`cargo build --bins --tests`, which unifies it), or
// ROOMRECD=path (roomrecctl beside it). CONSOLE_SCREENSHOTS=dir writes the screenshots of the
// views there (docs/console).

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, writeFileSync, readFileSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { Harness, BUCKET, FIXTURE_SEED, PASSWORD, S3_ACCESS_KEY, S3_SECRET, consoleDir, publicKeyOf, repoDir } from "./harness.mjs";

const ROOMRECD = process.env.ROOMRECD ?? path.join(repoDir, "target/debug/roomrecd");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
/** room-4 uploads to the bucket: its cloud recording is played, its microphone silenced, then
 * speaking (pro tier, transcribed: the page shows the transcript as subtitles). */
const CLOUD = "room-4";
const DEVICES = ["room-1", "room-2", "room-3", CLOUD];
/** The daemon's fault trigger (src/media/fault.rs SILENCE_FILE): the test tone at volume 0. */
const SILENCE_FILE = "fault-silent-microphone";
/** The fault trigger that has the test microphone play speech (src/media/fault.rs SPEECH_FILE,
 * raw 48 kHz mono S16LE), looped from the capture's start. */
const SPEECH_FILE = "fault-speech.s16";
const SENTENCE = "Good morning everyone, welcome to the weekly meeting.";
/** Hostile "devices": accounts that publish on their own prefix, as any device account could. */
const FAKES = ["fake-html", "fake-bytes"];
const WAIT_MS = 30000;
const shots = process.env.CONSOLE_SCREENSHOTS;

const h = new Harness();
let browser;
let page;
const pageErrors = [];
/** What the test's admin-console client read from room-4 (its replies and events). */
const seen = [];
let adminClient;

/** Waits until a message of room-4 matching `pred` was read; returns its JSON. */
async function waitSeen(what, pred, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = seen.find(pred);
    if (m) return m.json;
    assert.ok(Date.now() < deadline, `waiting for ${what}; read: ${seen.map((x) => x.topic + " " + JSON.stringify(x.json)).join("\n").slice(-3000)}\n${h.log(CLOUD).slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A meeting snapshot of device `id`, as the meeting service publishes it (host u-1); room-4's
 * account is pro and asks for a transcript. */
function meetingSnapshot(id, version, state) {
  const pro = id === CLOUD;
  return JSON.stringify({
    version, meeting_id: `m-${id}`, state, creator: "u-1", host: "u-1", cohosts: ["u-2"],
    participants: ["u-1", "u-2", "u-3"], sharing: false,
    account: { tier: pro ? "pro" : "business", licence_expires_at: "2099-01-01T00:00:00Z", cloud_quota_bytes: null, cloud_used_bytes: 0 },
    ...(pro ? { settings: { transcription: true } } : {}),
  });
}

/** SENTENCE said by espeak-ng after 1 s of a room's noise and before 2.5 s more, as the test
 * microphone plays it (SPEECH_FILE), at `out`. */
function writeSpeech(out) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "speech-"));
  const said = path.join(dir, "said.wav");
  execFileSync("espeak-ng", ["-v", "en-us", "-s", "140", "-w", said, SENTENCE]);
  execFileSync("ffmpeg", ["-nostdin", "-loglevel", "error", "-y", "-i", said, "-filter_complex",
    "[0]adelay=1000:all=1,apad=pad_dur=2.5[speech];anoisesrc=color=pink:amplitude=0.04:sample_rate=22050:seed=1[room];" +
    "[speech][room]amix=inputs=2:duration=first:normalize=0",
    "-f", "s16le", "-ar", "48000", "-ac", "1", out]);
  rmSync(dir, { recursive: true });
}

/** The cues of a WebVTT file as [start s, end s, text]. */
function vttCues(text) {
  const secs = (t) => t.split(":").reduce((acc, x) => acc * 60 + Number(x), 0);
  return [...text.matchAll(/^([\d:.]+) --> ([\d:.]+)[^\n]*\n([^\n]+)/gm)].map((m) => [secs(m[1]), secs(m[2]), m[3]]);
}

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
    // The silent-microphone alarm needs the daemon's fault trigger, in test builds only.
    let trigger = true;
    try { execFileSync("grep", ["-q", SILENCE_FILE, ROOMRECD]); } catch { trigger = false; }
    assert.ok(trigger, `${ROOMRECD} has no fault trigger: build it with the tests (cargo build --bins --tests)`);
    await h.startBroker([...DEVICES, ...FAKES, "admin-console", "svc-meeting", "svc-licence", "fleet-sim"]);
    await h.startBucket();
    for (const id of DEVICES) h.startDevice(id, ROOMRECD, { upload: id === CLOUD });
    // As the services do: a licence and a meeting (host u-1), retained, for every device.
    const licence = await h.client("svc-licence");
    const meeting = await h.client("svc-meeting");
    for (const id of DEVICES) {
      await licence.publishAsync(`roomrec/v1/${id}/licence`, JSON.stringify({ kind: "rooms", valid_until: "2099-01-01T00:00:00Z" }), { qos: 1, retain: true });
      await meeting.publishAsync(`roomrec/v1/${id}/meeting`, meetingSnapshot(id, 1, "active"), { qos: 1, retain: true });
    }
    adminClient = await h.client("admin-console");
    adminClient.on("message", (topic, payload) => {
      try { seen.push({ topic, json: JSON.parse(payload.toString()) }); } catch { /* not ours to judge here */ }
    });
    await adminClient.subscribeAsync([`roomrec/v1/${CLOUD}/events`, `roomrec/v1/${CLOUD}/reply`, `roomrec/v1/${CLOUD}/state`], { qos: 1 });
    const url = await h.serve(path.join(consoleDir, "dist"));
    const bucketEndpoint = await h.startCors(new URL(url).origin);
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
    await page.goto(`${url}?broker=${encodeURIComponent(`ws://127.0.0.1:${h.wsPort}/`)}&user=admin-console&admin=ops` +
      `&bucket_endpoint=${encodeURIComponent(bucketEndpoint)}&bucket=${BUCKET}`);
    await page.fill("#broker-password", PASSWORD);
    await page.click("#connect-button");
  });

  after(async () => {
    await browser?.close();
    if (process.env.CONSOLE_KEEP) console.log(`kept ${h.dir}`);
    await h.stop();
  });

  it("lists the four devices online, idle in their meeting", async () => {
    await waitFor("four devices online", (ids) =>
      ids.every((id) => document.querySelector(`tr[data-device="${id}"]`)?.dataset.online === "online"), DEVICES);
    for (const id of DEVICES) {
      assert.equal(await cellText(id, "recording"), id === CLOUD ? "idle" : "idle (cloud unavailable)");
      assert.match(await cellText(id, "version"), /^\d+\.\d+\.\d+/);
    }
    assert.match(await page.locator("#fleet-count").textContent(), /^4 devices, 4 online/);
    // room-4 starts its cloud recording with a silent microphone now: the alarm needs 30 s of
    // silence while recording, which runs while the tests below do. The host starts it, as
    // the meeting service would relay it.
    writeFileSync(path.join(h.storage(CLOUD), SILENCE_FILE), "");
    writeSpeech(path.join(h.storage(CLOUD), SPEECH_FILE));
    await adminClient.publishAsync(`roomrec/v1/${CLOUD}/cmd`, JSON.stringify({ id: "t-cloud", actor: "u-1", action: "start", kind: "cloud" }), { qos: 1 });
    const r = await waitSeen("the reply to the cloud start", (m) => m.topic.endsWith("/reply") && m.json.id === "t-cloud");
    assert.equal(r.ok, true, JSON.stringify(r));
    await waitFor("room-4 recording in the cloud", () =>
      /^cloud recording/.test(document.querySelector('tr[data-device="room-4"] td.recording')?.textContent ?? ""));
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
    assert.equal(await page.locator("#fleet-body tr:not([hidden])").count(), 6);
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
    // In its meeting and not recording: a `preview` is refused, with the reason on the page.
    const refused = await outcome(await command("admin:ops", "take picture"));
    assert.equal(refused.cls, "refused", refused.text);
    assert.match(refused.text, /forbidden: meeting m-room-2 is on and nothing records it/);
    // Its meeting over: a signed `preview` brings one picture of its camera (320x240 stream).
    const watcher = await h.client("admin-console");
    let applied = false;
    watcher.on("message", (_topic, payload) => {
      try { applied ||= JSON.parse(payload.toString()).meeting_version === 2; } catch { /* not JSON: not it */ }
    });
    await watcher.subscribeAsync("roomrec/v1/room-2/state", { qos: 1 });
    const svc = await h.client("svc-meeting");
    await svc.publishAsync("roomrec/v1/room-2/meeting", meetingSnapshot("room-2", 2, "ended"), { qos: 1, retain: true });
    for (const deadline = Date.now() + WAIT_MS; !applied; await new Promise((r) => setTimeout(r, 100))) {
      assert.ok(Date.now() < deadline, "room-2 never applied its meeting's end");
    }
    const picture = await outcome(await command("admin:ops", "take picture"));
    assert.equal(picture.cls, "ok", picture.text);
    await waitFor("room-2's camera picture decoded", () => {
      const img = document.querySelector("#device img.preview");
      return img && !img.hidden && img.complete && img.naturalWidth === 320 && img.naturalHeight === 240;
    });
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
    assert.match(await page.locator("#fleet-count").textContent(), /^6 devices, 4 online/);
    assert.deepEqual(pageErrors, []);
  });

  it("shows room-4's silent-microphone alarm first in the fleet and in its view, then cleared", async () => {
    // Raised 30 s into the silence (tests/daemon/alarms.rs); the tests above took part of it.
    const raised = await waitSeen("alarm_raised", (m) => m.topic.endsWith("/events") && m.json.type === "alarm_raised", 60000);
    assert.equal(raised.alarm.id, "microphone_silent", JSON.stringify(raised));
    await waitFor("room-4's alarm in the fleet", () =>
      document.querySelector('tr[data-device="room-4"]')?.classList.contains("alarm"));
    assert.match(await cellText(CLOUD, "alarms"), /^critical: .*silen/);
    // Alarms first: the two devices with a critical alarm head the table, by name.
    const order = await page.locator("#fleet-body tr").evaluateAll((rows) => rows.map((r) => r.dataset.device));
    assert.deepEqual(order.slice(0, 3), ["fake-html", CLOUD, "fake-bytes"]);
    if (shots) await page.screenshot({ path: path.join(shots, "fleet.png"), fullPage: true });

    await page.click('tr[data-device="room-4"] button');
    await waitFor("room-4's view with its alarm", () =>
      /critical microphone_silent since \S+: .*silen/.test(document.querySelector("#device .alarm-list")?.textContent ?? ""));
    // The sound returns: the device clears the alarm, and the page with it.
    rmSync(path.join(h.storage(CLOUD), SILENCE_FILE));
    await waitSeen("alarm_cleared", (m) => m.topic.endsWith("/events") && m.json.type === "alarm_cleared");
    // Someone speaks for a whole loop of the speech before the meeting ends (the next test
    // plays the recording with its transcript).
    const recordedMs = (m) => (m.topic.endsWith("/state") && m.json.cloud?.recorded_ms) || 0;
    const heardFrom = Math.max(...seen.map(recordedMs));
    await waitSeen("8 s more recorded", (m) => recordedMs(m) >= heardFrom + 8000);
    await waitFor("room-4's alarm cleared in its view", () => document.querySelector("#device .alarm-list")?.textContent === "none");
    await page.click("#device button.back");
    await waitFor("room-4's alarm cleared in the fleet", () => {
      const tr = document.querySelector('tr[data-device="room-4"]');
      return tr && !tr.classList.contains("alarm") && tr.querySelector("td.alarms")?.textContent === "";
    });
  });

  it("plays room-4's cloud recording from the bucket, presigned in the page", async () => {
    // The meeting ends: the device stops, uploads the rest, the playlist and the manifest.
    const svc = await h.client("svc-meeting");
    await svc.publishAsync(`roomrec/v1/${CLOUD}/meeting`, meetingSnapshot(CLOUD, 2, "ended"), { qos: 1, retain: true });
    const stopped = await waitSeen("recording_stopped", (m) => m.topic.endsWith("/events") && m.json.type === "recording_stopped");
    const ready = await waitSeen("recording_ready", (m) => m.topic.endsWith("/events") && m.json.type === "recording_ready");
    const rid = ready.recording_id;
    const recordedS = stopped.recorded_ms / 1000;
    const folder = path.join(h.s3Data, BUCKET, "u-1", `m-${CLOUD}`, rid);
    const segments = readdirSync(folder).filter((f) => f.endsWith(".ts")).length;
    assert.ok(recordedS > 20 && segments > 20, `${recordedS} s in ${segments} segments`);

    await page.click('tr[data-device="room-4"] button');
    await waitFor("room-4's view", () => document.querySelector("#device h2")?.textContent === "room-4");
    const list = await outcome(await command("admin:ops", "list recordings"));
    assert.equal(list.cls, "ok", list.text);
    const play = page.locator(`#device button.play[data-recording="${rid}"]`);

    // A wrong secret: the store refuses the signature and the page says which key to check.
    await page.fill("#bucket-key", S3_ACCESS_KEY);
    await page.fill("#bucket-secret", "not-the-secret");
    await page.click("#bucket-button");
    await waitFor("the bucket credentials taken", () => document.getElementById("bucket-status")?.className === "ok");
    assert.equal(await page.inputValue("#bucket-secret"), "", "the secret stays in the form");
    await play.click();
    await waitFor("the refusal shown", () =>
      /the store answered 403 SignatureDoesNotMatch: check the secret access key/.test(document.querySelector("#device .player-note")?.textContent ?? ""));

    await page.fill("#bucket-secret", S3_SECRET);
    await page.click("#bucket-button");
    await waitFor("the right credentials taken", () => document.getElementById("bucket-status")?.className === "ok");
    await play.click();
    // The manifest as read from the bucket.
    await waitFor("the manifest shown", () => /segments/.test(document.querySelector("#device .manifest")?.textContent ?? ""));
    const manifestText = await page.locator("#device .manifest").textContent();
    assert.match(manifestText, new RegExp(`segments${segments} \\(`), manifestText);
    // hls.js reads the playlist: the media's duration is the recording's.
    const duration = await (await waitFor("a finite duration", () => {
      const v = document.querySelector("#device .player video");
      return v && Number.isFinite(v.duration) && v.duration > 0 && v.duration;
    })).jsonValue();
    // The whole playlist, as the bucket holds it (the sum of its EXTINF), and the time the
    // device said it recorded, within less than one segment (1 s): a lost segment shows.
    const playlistS = [...readFileSync(path.join(folder, "index.m3u8"), "utf8").matchAll(/#EXTINF:([\d.]+),/g)]
      .reduce((sum, m) => sum + Number(m[1]), 0);
    console.log(`# cloud recording: ${recordedS.toFixed(1)} s recorded, ${segments} segments, ${playlistS.toFixed(2)} s in the playlist; the page's video: ${duration.toFixed(2)} s`);
    assert.ok(Math.abs(duration - playlistS) < 0.1, `video ${duration} s, playlist ${playlistS} s`);
    assert.ok(Math.abs(duration - recordedS) < 0.8, `video ${duration} s, recorded ${recordedS} s`);

    // It plays: time advances and frames are decoded.
    await page.evaluate(() => document.querySelector("#device .player video").play());
    await waitFor("3 s played", () => document.querySelector("#device .player video").currentTime > 3);
    const quality = await page.evaluate(() => {
      const q = document.querySelector("#device .player video").getVideoPlaybackQuality();
      return { total: q.totalVideoFrames, dropped: q.droppedVideoFrames };
    });
    assert.ok(quality.total >= 30, `frames decoded in 3 s at 15 fps: ${JSON.stringify(quality)}`);
    // The picture is the test source's: a white ball on black that moves. Two frames, 0.5 s
    // apart, each with some bright pixels on a dark field; the ball's centre moved.
    const frame = () => page.evaluate(() => {
      const v = document.querySelector("#device .player video");
      const c = document.createElement("canvas");
      c.width = v.videoWidth;
      c.height = v.videoHeight;
      const g = c.getContext("2d", { willReadFrequently: true });
      g.drawImage(v, 0, 0);
      const px = g.getImageData(0, 0, c.width, c.height).data;
      let bright = 0, dark = 0, sx = 0, sy = 0;
      for (let i = 0; i < px.length; i += 4) {
        const y = 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
        const p = i / 4;
        if (y > 160) { bright++; sx += p % c.width; sy += Math.floor(p / c.width); }
        else if (y < 40) dark++;
      }
      const n = px.length / 4;
      return { w: c.width, h: c.height, bright: bright / n, dark: dark / n, x: sx / Math.max(1, bright), y: sy / Math.max(1, bright), t: v.currentTime };
    });
    const a = await frame();
    await page.waitForTimeout(500);
    const b = await frame();
    console.log(`# frames: ${JSON.stringify(a)} ${JSON.stringify(b)}; decoded ${quality.total}, dropped ${quality.dropped}`);
    for (const f of [a, b]) {
      assert.equal(`${f.w}x${f.h}`, "320x240", JSON.stringify(f));
      assert.ok(f.bright > 0.005 && f.bright < 0.3 && f.dark > 0.5, `not the ball on black: ${JSON.stringify(f)}`);
    }
    assert.ok(b.t > a.t && Math.hypot(b.x - a.x, b.y - a.y) > 2, `the ball did not move: ${JSON.stringify([a, b])}`);

    // The transcript as hls.js shows it: cues in the video's showing text track at the times
    // of the device's WebVTT files. hls.js places each cue by its file's X-TIMESTAMP-MAP (the
    // segment's first PTS against its time in the recording): a wrong map shifts every cue.
    const fileCues = readdirSync(folder).filter((f) => f.endsWith(".vtt")).sort()
      .flatMap((f) => vttCues(readFileSync(path.join(folder, f), "utf8")));
    const spoken = fileCues.filter((c) => /morning|weekly|meeting/.test(c[2]));
    assert.ok(spoken.length > 0, `the device transcribed the sentence: ${JSON.stringify(fileCues)}`);
    await page.evaluate((t) => { document.querySelector("#device .player video").currentTime = t; }, Math.max(0, spoken[0][0] - 1));
    const pageCues = await (await waitFor("the spoken cues in the page's text track", (texts) => {
      const v = document.querySelector("#device .player video");
      const track = [...v.textTracks].find((t) => t.mode === "showing");
      const cues = track?.cues ? [...track.cues].map((c) => [c.startTime, c.endTime, c.text]) : [];
      return texts.every((t) => cues.some((c) => c[2] === t)) && cues;
    }, spoken.map((c) => c[2]))).jsonValue();
    for (const [start, , text] of pageCues) {
      const match = fileCues.find((c) => c[2] === text && Math.abs(c[0] - start) < 0.05);
      assert.ok(match, `the page shows "${text}" at ${start} s; the device wrote it at ${fileCues.filter((c) => c[2] === text).map((c) => c[0])} s`);
    }
    console.log(`# transcript: ${pageCues.length} cues in the page, each at the device's time: ${JSON.stringify(pageCues)}`);
    if (shots) {
      await page.evaluate(() => document.querySelector("#device .player").scrollIntoView());
      await page.screenshot({ path: path.join(shots, "player.png"), fullPage: true });
    }

    // A completeness report, when the device writes one, is shown as it comes, and as text.
    // (Written into s3s-fs's file here, in a shape of the test's own; the page does not
    // depend on the shape.)
    const manifestFile = path.join(folder, "manifest.json");
    const manifest = JSON.parse(readFileSync(manifestFile, "utf8"));
    manifest.completeness = { recorded_ms: 33000, silent_share: 0.9, gaps: [{ cause: "camera_lost", duration_ms: 2000, note: "<img src=x onerror=window.__pwned=5>" }] };
    writeFileSync(manifestFile, JSON.stringify(manifest));
    await page.click("#device button.close-player");
    await play.click();
    await waitFor("the completeness report", () => document.querySelector("#device table.completeness") !== null);
    assert.equal(await page.locator("#device table.completeness").textContent(),
      "recorded_ms33000silent_share0.9gapscause: camera_lost, duration_ms: 2000, note: <img src=x onerror=window.__pwned=5>");
    assert.equal(await page.locator("#device .player img").count(), 0);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    assert.deepEqual(pageErrors, []);
  });

  it("stays usable with 200 devices: rows are updated in place, not rebuilt", async () => {
    const sim = await h.client("fleet-sim");
    const ids = Array.from({ length: 200 }, (_, i) => `sim-${String(i).padStart(3, "0")}`);
    const t0 = Date.now();
    await Promise.all(ids.map((id) => sim.publishAsync(`roomrec/v1/${id}/status`,
      JSON.stringify({ online: true, version: "0.1.0", camera: "ok", microphone: "ok" }), { qos: 1, retain: true })));
    await page.click("#device button.back");
    await waitFor("206 rows", () => document.querySelectorAll("#fleet-body tr").length === 206);
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
    assert.equal(await page.locator("#fleet-body tr[data-tag=first]").count(), 206, "rows were rebuilt instead of updated");
    await page.fill("#filter", "sim-01");
    assert.equal(await page.locator("#fleet-body tr:not([hidden])").count(), 10);
    await page.fill("#filter", "");
    // Sorted by name after the alarms, garbage and offline devices; the filter cleared.
    const order = await page.locator("#fleet-body tr").evaluateAll((rows) => rows.map((r) => r.dataset.device));
    assert.deepEqual(order.slice(0, 7), ["fake-html", "fake-bytes", "room-3", "room-1", "room-2", "room-4", "sim-000"]);
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
