// Fleet bench (issue 14): N real roomrecd (default 100), idle on GStreamer test sources, against
// one mosquitto with the example ACL; the console's fleet view in Debian's Chromium; then the
// broker restarted. A bench, not a test: it prints figures and asserts only that it could
// measure them.
//
//   node bench/fleet.mjs [N]          (ROOMRECD=path, default target/release/roomrecd)
//
// Prints:
// - memory per idle daemon: RSS and PSS (/proc/PID/smaps_rollup: PSS divides the shared
//   libraries among the processes mapping them, which is what N daemons on one host cost;
//   on a room device there is one daemon, and its RSS is what it costs);
// - the time from the first daemon's start until the page lists all N online;
// - the broker stopped for 5 s and started again (its retained messages gone: persistence off,
//   as in the test broker): when each daemon's status came back (each reconnects after its own
//   jittered backoff, src/retry.rs, and republishes its status on connect), and when a page
//   loaded afresh shows all N online;
// - from a state change on a device to the page showing it: a participant's `start` published,
//   the device's `state` seen by a watching client, and the page's row showing the recording
//   (the page's share is the last minus the middle).

import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import { Harness, PASSWORD, consoleDir, repoDir } from "../test/harness.mjs";

const N = Number(process.argv[2] ?? 100);
const ROOMRECD = process.env.ROOMRECD ?? path.join(repoDir, "target/release/roomrecd");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const CHANGES = 10;
const ids = Array.from({ length: N }, (_, i) => `room-${String(i + 1).padStart(3, "0")}`);

const now = () => performance.now();
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;

function smaps(pid) {
  const kb = (key, text) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN);
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  return { rss: kb("Rss", text), pss: kb("Pss", text), anon: kb("Anonymous", text) };
}

function quantiles(values) {
  const v = [...values].sort((a, b) => a - b);
  const q = (p) => v[Math.min(v.length - 1, Math.floor(p * v.length))];
  return { min: v[0], median: q(0.5), p90: q(0.9), max: v[v.length - 1] };
}

async function pageCount(page) {
  return (await page.locator("#fleet-count").textContent()) ?? "";
}

/** Waits until the page says all N are online; returns when (performance.now()). */
async function allOnline(page, ms) {
  await page.waitForFunction((n) => new RegExp(`^${n} devices, ${n} online`).test(document.getElementById("fleet-count")?.textContent ?? ""),
    N, { timeout: ms, polling: "raf" });
  return now();
}

async function main() {
  if (!existsSync(ROOMRECD)) throw new Error(`${ROOMRECD} is missing: cargo build --release --bins (or set ROOMRECD)`);
  const h = new Harness();
  let browser;
  try {
    await h.startBroker([...ids, "admin-console", "svc-meeting", "svc-licence"]);
    const licence = await h.client("svc-licence");
    const meeting = await h.client("svc-meeting");
    for (const id of ids) {
      await licence.publishAsync(`roomrec/v1/${id}/licence`, JSON.stringify({ kind: "rooms", valid_until: "2099-01-01T00:00:00Z" }), { qos: 1, retain: true });
      await meeting.publishAsync(`roomrec/v1/${id}/meeting`, JSON.stringify({
        version: 1, meeting_id: `m-${id}`, state: "active", creator: "u-1", host: "u-1", cohosts: [],
        participants: ["u-1"], sharing: false,
        account: { tier: "business", licence_expires_at: "2099-01-01T00:00:00Z", cloud_quota_bytes: null, cloud_used_bytes: 0 },
      }), { qos: 1, retain: true });
    }
    const url = await h.serve(path.join(consoleDir, "dist"));
    const profile = mkdtempSync(path.join(h.dir, "chromium-"));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true, viewport: { width: 1280, height: 860 },
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
    });
    const page = browser.pages()[0] ?? (await browser.newPage());
    await page.goto(`${url}?broker=${encodeURIComponent(`ws://127.0.0.1:${h.wsPort}/`)}&user=admin-console`);
    await page.fill("#broker-password", PASSWORD);
    await page.click("#connect-button");

    const t0 = now();
    for (const id of ids) h.startDevice(id, ROOMRECD);
    const up = await allOnline(page, 600_000);
    console.log(`${N} roomrecd started: all online in the page ${secs(up - t0)} after the first start`);

    await new Promise((r) => setTimeout(r, 10_000)); // settled, idle
    const mem = ids.map((id) => smaps(h.procs.get(id).pid));
    const rss = quantiles(mem.map((m) => m.rss / 1024));
    const pss = quantiles(mem.map((m) => m.pss / 1024));
    const anon = quantiles(mem.map((m) => m.anon / 1024));
    const f = (q) => `median ${q.median.toFixed(1)} MB (min ${q.min.toFixed(1)}, p90 ${q.p90.toFixed(1)}, max ${q.max.toFixed(1)})`;
    console.log(`memory per idle daemon: RSS ${f(rss)}; PSS ${f(pss)}; anonymous ${f(anon)}`);
    const total = mem.reduce((s, m) => s + m.pss, 0) / 1024;
    console.log(`all ${N} together (PSS): ${total.toFixed(0)} MB; mosquitto RSS ${(smaps(h.procs.get("mosquitto").pid).rss / 1024).toFixed(1)} MB`);

    // The broker goes away and comes back on the same ports, its retained messages gone. A
    // watching client and a freshly loaded page see each device's status as it comes back.
    const conf = path.join(h.dir, "mosquitto.conf");
    h.kill("mosquitto", "SIGTERM");
    await new Promise((r) => setTimeout(r, 5_000));
    const t1 = now();
    h.spawn("mosquitto", "/usr/sbin/mosquitto", ["-c", conf]);
    await new Promise((r) => setTimeout(r, 300));
    const watcher = await h.client("admin-console");
    const backAt = new Map();
    watcher.on("message", (topic, payload) => {
      const [, , id, kind] = topic.split("/");
      try {
        if (kind === "status" && JSON.parse(payload.toString()).online === true && !backAt.has(id)) backAt.set(id, now() - t1);
      } catch { /* not JSON */ }
    });
    await watcher.subscribeAsync("roomrec/v1/+/status", { qos: 1 });
    await page.reload();
    await page.fill("#broker-password", PASSWORD);
    await page.click("#connect-button");
    const back = await allOnline(page, 600_000);
    const spread = quantiles([...backAt.values()]);
    console.log(`broker restarted after 5 s down: ${backAt.size} statuses republished, the first ${secs(spread.min)}, median ${secs(spread.median)}, last ${secs(spread.max)} after it started (jittered backoff); the reloaded page shows all ${N} online ${secs(back - t1)} after it started`);
    for (const c of [licence, meeting]) c.reconnect();

    // State changes: a start on CHANGES devices, one after another.
    const stateAt = new Map();
    const replies = new Map();
    watcher.on("message", (topic, payload) => {
      const [, , id, kind] = topic.split("/");
      try {
        const s = JSON.parse(payload.toString());
        if (kind === "state" && (s.local ?? []).length > 0 && !stateAt.has(id)) stateAt.set(id, now());
        if (kind === "reply") replies.set(id, s);
      } catch { /* not JSON */ }
    });
    await watcher.subscribeAsync(["roomrec/v1/+/state", "roomrec/v1/+/reply"], { qos: 1 });
    const device = [], pageShare = [];
    for (const id of ids.slice(0, CHANGES)) {
      const sent = now();
      await watcher.publishAsync(`roomrec/v1/${id}/cmd`, JSON.stringify({ id: `b-${id}`, actor: "u-1", action: "start", kind: "local" }), { qos: 1 });
      await page.waitForFunction((dev) => /^local recording/.test(document.querySelector(`tr[data-device="${dev}"] td.recording`)?.textContent ?? ""),
        id, { timeout: 60_000, polling: "raf" }).catch((e) => {
        throw new Error(`${id} not shown recording: reply ${JSON.stringify(replies.get(id))}; row "${""}": ${e.message}`);
      });
      const shown = now();
      const stated = stateAt.get(id);
      if (stated === undefined) throw new Error(`no state of ${id} seen`);
      device.push(stated - sent);
      pageShare.push(shown - stated);
    }
    const ms = (q) => `median ${q.median.toFixed(0)} ms (min ${q.min.toFixed(0)}, max ${q.max.toFixed(0)})`;
    console.log(`state change to the page, ${CHANGES} devices: start sent -> device's state ${ms(quantiles(device))}; state -> page row ${ms(quantiles(pageShare))}`);
    console.log(`machine: ${execFileSync("nproc").toString().trim()} cores, load ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}`);
  } finally {
    await browser?.close();
    // The recording daemons finish their segments before their folder goes.
    const daemons = ids.map((id) => h.procs.get(id)).filter((p) => p && p.exitCode === null);
    for (const p of daemons) p.kill("SIGTERM");
    await Promise.all(daemons.map((p) => new Promise((r) => {
      const timer = setTimeout(r, 20_000);
      p.once("exit", () => { clearTimeout(timer); r(); });
    })));
    await h.stop();
  }
}

await main();
