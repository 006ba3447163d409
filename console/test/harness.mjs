// The real parts the console test runs against: a mosquitto with the example ACL and a password
// file (a TCP listener for the daemons, a plain ws:// listener for the page), real roomrecd
// processes on GStreamer test sources, a real S3 server (s3s-fs) the daemons upload to and the
// page reads from (through a pass-through that answers CORS as a bucket's CORS rules would), a
// static HTTP server for dist/, and Debian's Chromium through playwright-core. Everything lives
// in one temporary folder and is stopped by `stop()`.

import { spawn, execFileSync } from "node:child_process";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, existsSync, copyFileSync, rmSync } from "node:fs";
import { createServer, request as httpRequest } from "node:http";
import net from "node:net";
import { homedir, tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import mqtt from "mqtt";

export const consoleDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const repoDir = path.resolve(consoleDir, "..");

/** The fixture admin key of the Rust tests (tests/common/device.rs `admin_key`). */
export const FIXTURE_SEED = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

/** The public key of a base64 seed, in the form auth.admin_keys takes (raw 32 bytes, base64). */
export function publicKeyOf(seedB64) {
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, Buffer.from(seedB64, "base64")]), format: "der", type: "pkcs8" });
  const spki = createPublicKey(key).export({ format: "der", type: "spki" });
  return spki.subarray(spki.length - 32).toString("base64");
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function waitPort(port, what, ms = 10000) {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const sock = net.connect(port, "127.0.0.1");
      sock.once("connect", () => { sock.destroy(); resolve(); });
      sock.once("error", () => {
        sock.destroy();
        if (Date.now() > deadline) reject(new Error(`${what} did not listen on ${port}`));
        else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}

export const PASSWORD = "console-test-password";

/** The bucket of the test's s3s-fs and its one key pair (s3s-fs knows one). */
export const BUCKET = "recordings";
export const S3_ACCESS_KEY = "console-test-key";
export const S3_SECRET = "console-test-s3-secret";
const S3S_FS = process.env.S3S_FS ?? path.join(process.env.ROOMREC_TOOLS ?? path.join(homedir(), ".cache/roomrec/tools"), "bin/s3s-fs");

/**
 * What a bucket's CORS rules answer (docs/console.md gives the rules a real bucket needs):
 * s3s-fs has no CORS (it answers OPTIONS with 501 NotImplemented and sends no
 * Access-Control-* header), so this pass-through stands in for the bucket's CORS
 * configuration and nothing else. For `origin` only: a preflight for GET or HEAD is answered
 * here, and every other request is forwarded to s3s-fs unchanged (the Host header too: the
 * page signs it) with Access-Control-Allow-Origin added to the answer. Other origins get no
 * CORS header, as from a bucket whose rules do not list them.
 */
export function corsPassThrough(target, origin) {
  return createServer((req, res) => {
    const allowed = req.headers.origin === origin;
    if (req.method === "OPTIONS") {
      const method = req.headers["access-control-request-method"];
      if (!allowed || (method !== "GET" && method !== "HEAD")) { res.writeHead(403).end(); return; }
      res.writeHead(200, {
        "access-control-allow-origin": origin,
        "access-control-allow-methods": "GET, HEAD",
        "access-control-allow-headers": req.headers["access-control-request-headers"] ?? "",
        "access-control-max-age": "3000",
        vary: "Origin",
      }).end();
      return;
    }
    const up = httpRequest({ host: "127.0.0.1", port: target, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      const headers = { ...ur.headers };
      if (allowed) Object.assign(headers, { "access-control-allow-origin": origin, vary: "Origin" });
      res.writeHead(ur.statusCode ?? 502, headers);
      ur.pipe(res);
    });
    up.on("error", () => res.writeHead(502).end());
    req.pipe(up);
  });
}

export class Harness {
  constructor() {
    this.dir = mkdtempSync(path.join(tmpdir(), "roomrec-console-"));
    this.procs = new Map();
    this.clients = [];
  }

  /** mosquitto with config/mosquitto-acl.example as it is, every account's password PASSWORD. */
  async startBroker(users) {
    const passwd = path.join(this.dir, "passwd");
    writeFileSync(passwd, "");
    for (const u of users) execFileSync("mosquitto_passwd", ["-b", passwd, u, PASSWORD]);
    const acl = path.join(this.dir, "acl");
    copyFileSync(path.join(repoDir, "config/mosquitto-acl.example"), acl);
    // One account beyond the example, for the test alone: it stands in for 200 devices.
    writeFileSync(acl, "\nuser fleet-sim\ntopic write roomrec/v1/+/status\ntopic write roomrec/v1/+/state\n", { flag: "a" });
    this.tcpPort = await freePort();
    this.wsPort = await freePort();
    const conf = path.join(this.dir, "mosquitto.conf");
    writeFileSync(conf, [
      "per_listener_settings false",
      "allow_anonymous false",
      `password_file ${passwd}`,
      `acl_file ${acl}`,
      "set_tcp_nodelay true",
      "persistence false",
      "user root",
      `listener ${this.tcpPort} 127.0.0.1`,
      `listener ${this.wsPort} 127.0.0.1`,
      "protocol websockets",
      "",
    ].join("\n"));
    this.spawn("mosquitto", "/usr/sbin/mosquitto", ["-c", conf]);
    await waitPort(this.tcpPort, "mosquitto");
    await waitPort(this.wsPort, "mosquitto (websockets)");
  }

  /** s3s-fs with the bucket BUCKET, on a free loopback port (`this.s3Port`). */
  async startBucket() {
    if (!existsSync(S3S_FS)) throw new Error(`${S3S_FS} is missing: run scripts/install-s3s-fs (or set S3S_FS)`);
    this.s3Data = path.join(this.dir, "s3");
    mkdirSync(path.join(this.s3Data, BUCKET), { recursive: true });
    this.s3Port = await freePort();
    this.spawn("s3s-fs", S3S_FS, ["--host", "127.0.0.1", "--port", String(this.s3Port),
      "--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET, this.s3Data]);
    await waitPort(this.s3Port, "s3s-fs");
  }

  /** The CORS pass-through to s3s-fs for the page's `origin`; returns its endpoint URL. */
  async startCors(origin) {
    this.cors = corsPassThrough(this.s3Port, origin);
    const port = await freePort();
    await new Promise((resolve) => this.cors.listen(port, "127.0.0.1", resolve));
    return `http://127.0.0.1:${port}`;
  }

  /** The storage folder of device `id` (the daemon's `storage.dir`). */
  storage(id) {
    return path.join(this.dir, id, "storage");
  }

  /**
   * A roomrecd logged in as its device id, on test sources, with the fixture admin key; with
   * `upload`, it uploads its cloud recordings to the s3s-fs of `startBucket`.
   */
  startDevice(id, roomrecd, { upload = false } = {}) {
    const dir = path.join(this.dir, id);
    const passFile = path.join(this.dir, `${id}.pass`);
    writeFileSync(passFile, `${PASSWORD}\n`, { mode: 0o600 });
    const config = path.join(this.dir, `${id}.toml`);
    writeFileSync(config, `device_id = "${id}"

[mqtt]
url = "mqtt://127.0.0.1:${this.tcpPort}"
username = "${id}"
password_file = "${passFile}"

[storage]
dir = "${dir}/storage"

[media]
source = "test"
segment_seconds = 1
width = 320
height = 240
framerate = 15
video_bitrate_kbps = 300

[auth.admin_keys]
ops = "${publicKeyOf(FIXTURE_SEED)}"
${upload ? `
[upload]
endpoint = "http://127.0.0.1:${this.s3Port}"
bucket = "${BUCKET}"
region = "us-east-1"
path_style = true
access_key_id = "${S3_ACCESS_KEY}"
secret_access_key = "${S3_SECRET}"
` : ""}`);
    this.spawn(id, roomrecd, ["--config", config]);
  }

  spawn(name, cmd, args) {
    const log = path.join(this.dir, `${name}.log`);
    writeFileSync(log, "");
    const p = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    const append = (b) => writeFileSync(log, b, { flag: "a" });
    p.stdout.on("data", append);
    p.stderr.on("data", append);
    this.procs.set(name, p);
    return p;
  }

  kill(name, signal = "SIGKILL") {
    this.procs.get(name)?.kill(signal);
  }

  log(name) {
    const f = path.join(this.dir, `${name}.log`);
    return existsSync(f) ? readFileSync(f, "utf8") : "";
  }

  /** An MQTT 5 client of the node build of MQTT.js, logged in as `user`. */
  async client(user) {
    const c = mqtt.connect(`mqtt://127.0.0.1:${this.tcpPort}`, {
      protocolVersion: 5, username: user, password: PASSWORD, clientId: `test-${user}-${Math.random().toString(36).slice(2)}`, reconnectPeriod: 0,
    });
    await new Promise((resolve, reject) => { c.once("connect", resolve); c.once("error", reject); });
    this.clients.push(c);
    return c;
  }

  /** Serves `root` read-only on a free loopback port. */
  async serve(root) {
    const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css", ".map": "application/json", ".svg": "image/svg+xml" };
    this.http = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://x");
      const rel = path.normalize(decodeURIComponent(url.pathname)).replace(/^(\.\.[/\\])+/, "");
      let file = path.join(root, rel);
      if (!file.startsWith(root)) { res.writeHead(403).end(); return; }
      if (file.endsWith(path.sep)) file = path.join(file, "index.html");
      if (!existsSync(file)) { res.writeHead(404).end("not found"); return; }
      res.writeHead(200, { "content-type": types[path.extname(file)] ?? "application/octet-stream" });
      res.end(readFileSync(file));
    });
    const port = await freePort();
    await new Promise((resolve) => this.http.listen(port, "127.0.0.1", resolve));
    return `http://127.0.0.1:${port}/`;
  }

  async stop() {
    for (const c of this.clients) c.end(true);
    this.http?.close();
    this.cors?.close();
    for (const p of this.procs.values()) if (p.exitCode === null) p.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 300));
    for (const p of this.procs.values()) if (p.exitCode === null) p.kill("SIGKILL");
    if (!process.env.CONSOLE_KEEP) rmSync(this.dir, { recursive: true, force: true });
  }
}
