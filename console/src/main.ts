// Wires the page: the connect form, the MQTT client (MQTT.js over WebSockets, MQTT 5), the
// admin key, the bucket's read credentials, and the two views. Owns topics, subscriptions and
// command publishing. The broker password, the key and the bucket secret are only in memory,
// never stored.

import mqtt, { type MqttClient } from "mqtt";
import "./style.css";
import { Bucket, BucketError } from "./bucket";
import { byId, setText } from "./dom";
import { DeviceView, type CommandRequest } from "./device";
import { FleetView, type SortKey } from "./fleet";
import { type Change, Fleet, TOPIC_ROOT } from "./model";
import { KeyFileError, freshNonce, importKeyFile, signPayload, signedAtNow } from "./sign";

const fleet = new Fleet();
/** This page's response topics end in this, so it reads only its own replies. */
const session = `console-${freshNonce().slice(0, 12)}`;
let client: MqttClient | null = null;
let adminKey: CryptoKey | null = null;
let bucket: Bucket | null = null;
let deviceView: DeviceView | null = null;
let commandCount = 0;

const fleetView = new FleetView(
  byId<HTMLTableSectionElement>("fleet-body"),
  byId("fleet-count"),
  fleet.devices,
  (id) => openDevice(id),
);

function connStatus(text: string, cls: string): void {
  const e = byId("conn-status");
  setText(e, text);
  e.className = cls;
}

function connect(url: string, username: string, password: string): void {
  client?.end(true);
  connStatus(`connecting to ${url}`, "muted");
  const c = mqtt.connect(url, {
    protocolVersion: 5,
    clean: true,
    clientId: session,
    username: username || undefined,
    password: password || undefined,
    reconnectPeriod: 3000,
    connectTimeout: 10000,
  });
  client = c;
  c.on("connect", () => {
    connStatus(`connected to ${url}`, "ok");
    const topics: Record<string, { qos: 0 | 1 }> = {};
    for (const k of ["status", "state", "events", "preview"]) topics[`${TOPIC_ROOT}/+/${k}`] = { qos: 1 };
    topics[`${TOPIC_ROOT}/+/levels`] = { qos: 0 };
    topics[`${TOPIC_ROOT}/+/reply/${session}`] = { qos: 1 };
    c.subscribe(topics, (err, granted) => {
      const refused = (granted ?? []).filter((g) => g.qos > 2).map((g) => g.topic);
      if (err || refused.length > 0) {
        connStatus(`connected, but the broker refused ${refused.join(", ") || String(err)}: check the account's ACL`, "error");
      }
    });
  });
  c.on("reconnect", () => connStatus(`reconnecting to ${url}`, "muted"));
  c.on("close", () => { if (client === c) connStatus(`disconnected from ${url}; retrying`, "error"); });
  c.on("error", (e) => connStatus(`broker error: ${e.message}`, "error"));
  c.on("message", (topic, payload) => received(topic, payload));
  byId("disconnect-button").hidden = false;
}

function received(topic: string, payload: Uint8Array): void {
  try {
    const r = fleet.apply(topic, payload);
    if (!r) return;
    fleetView.changed(r.device.id);
    if (deviceView?.deviceId === r.device.id) scheduleDevice(r.change);
  } catch (e) {
    // A parser fault must never stop the page; the device is marked as reporting garbage.
    const id = topic.split("/")[2];
    if (id) {
      fleet.device(id).garbage.set(topic.split("/")[3] ?? "?", `the console could not read it (${String(e)})`);
      fleetView.changed(id);
    }
  }
}

const pendingDevice = new Set<Change>();
let deviceFrame = 0;
function scheduleDevice(change: Change): void {
  pendingDevice.add(change);
  if (deviceFrame !== 0) return;
  deviceFrame = requestAnimationFrame(() => {
    deviceFrame = 0;
    for (const c of pendingDevice) deviceView?.update(c);
    pendingDevice.clear();
  });
}

function adminActor(): string | null {
  const name = byId<HTMLInputElement>("admin-name").value.trim();
  return name ? `admin:${name}` : null;
}

function openDevice(id: string): void {
  closeDevice();
  const section = byId("device");
  deviceView = new DeviceView(section, fleet.device(id), adminActor, (req) => void sendCommand(id, req), () => {
    history.pushState(null, "", "#");
    closeDevice();
  }, () => bucket);
  section.hidden = false;
  byId("fleet").hidden = true;
  if (location.hash !== `#device=${encodeURIComponent(id)}`) history.pushState(null, "", `#device=${encodeURIComponent(id)}`);
}

function closeDevice(): void {
  deviceView?.dispose();
  deviceView = null;
  byId("device").hidden = true;
  byId("fleet").hidden = false;
}

async function sendCommand(deviceId: string, req: CommandRequest): Promise<void> {
  const d = fleet.device(deviceId);
  const id = `${session}-${++commandCount}`;
  const admin = req.actor.startsWith("admin:");
  const entry = { id, action: req.action, actor: req.actor, signed: admin, sentAt: new Date(), failure: undefined as string | undefined };
  d.commands.unshift(entry);
  const fail = (why: string) => {
    entry.failure = why;
    deviceView?.update("commands");
  };
  deviceView?.update("commands");
  if (!client?.connected) return fail("not connected to the broker");
  if (!req.actor) return fail("no actor: type admin:<name> or a participant id");
  const base = `${TOPIC_ROOT}/${deviceId}`;
  const topic = `${base}/cmd`;
  const command: Record<string, unknown> = { id, actor: req.actor, action: req.action, ...req.fields };
  const userProperties: Record<string, string> = {};
  let payload: string;
  if (admin) {
    if (!adminKey) return fail("admin commands must be signed: load the admin key file first");
    command.signed_at = signedAtNow();
    command.nonce = freshNonce();
    payload = JSON.stringify(command);
    userProperties["roomrec-sig"] = await signPayload(adminKey, topic, payload);
  } else {
    payload = JSON.stringify(command);
  }
  client.publish(topic, payload, {
    qos: 1,
    // With an empty user-property map the command never reached the device (MQTT.js 5,
    // mosquitto 2.0): only a signed command carries one.
    properties: { responseTopic: `${base}/reply/${session}`, ...(admin ? { userProperties } : {}) },
  }, (err) => {
    if (err) fail(`the broker refused the publish: ${err.message}`);
  });
}

async function loadKey(file: File): Promise<void> {
  const status = byId("key-status");
  adminKey = null;
  try {
    if (file.size > 1024) throw new KeyFileError("this file is too large to be a key file");
    adminKey = await importKeyFile(await file.text());
    setText(status, `key loaded from ${file.name} (kept in this page only)`);
    status.className = "ok";
  } catch (e) {
    setText(status, e instanceof KeyFileError ? e.message : `could not load the key: ${String(e)}`);
    status.className = "error";
  } finally {
    // The file stays selected only as a name; clear it so the page holds no reference to it.
    byId<HTMLInputElement>("key-file").value = "";
  }
}

async function loadBucket(): Promise<void> {
  const status = byId("bucket-status");
  const secret = byId<HTMLInputElement>("bucket-secret");
  bucket = null;
  try {
    bucket = await Bucket.open({
      endpoint: byId<HTMLInputElement>("bucket-endpoint").value.trim(),
      bucket: byId<HTMLInputElement>("bucket-name").value.trim(),
      region: byId<HTMLInputElement>("bucket-region").value.trim() || "us-east-1",
      accessKeyId: byId<HTMLInputElement>("bucket-key").value.trim(),
      secret: secret.value,
    });
    setText(status, `reading ${bucket.name} at ${bucket.endpoint.origin} (secret kept in this page only, as a signing key)`);
    status.className = "ok";
  } catch (e) {
    setText(status, e instanceof BucketError ? e.message : `could not use these credentials: ${String(e)}`);
    status.className = "error";
  } finally {
    // The secret's only form left is the non-extractable signing key.
    secret.value = "";
  }
}

function init(): void {
  const params = new URLSearchParams(location.search);
  const url = byId<HTMLInputElement>("broker-url");
  url.value = params.get("broker") ?? `wss://${location.hostname || "localhost"}:8884/`;
  byId<HTMLInputElement>("broker-user").value = params.get("user") ?? "admin-console";
  byId<HTMLInputElement>("admin-name").value = params.get("admin") ?? "";
  // Where the recordings are may be preset; the keys never are.
  byId<HTMLInputElement>("bucket-endpoint").value = params.get("bucket_endpoint") ?? "";
  byId<HTMLInputElement>("bucket-name").value = params.get("bucket") ?? "";
  byId<HTMLInputElement>("bucket-region").value = params.get("bucket_region") ?? "us-east-1";
  byId<HTMLFormElement>("bucketbar").addEventListener("submit", (e) => {
    e.preventDefault();
    void loadBucket();
  });
  byId<HTMLFormElement>("connect").addEventListener("submit", (e) => {
    e.preventDefault();
    connect(url.value.trim(), byId<HTMLInputElement>("broker-user").value.trim(), byId<HTMLInputElement>("broker-password").value);
  });
  byId("disconnect-button").addEventListener("click", () => {
    const c = client;
    client = null;
    c?.end(true);
    connStatus("not connected", "muted");
    byId("disconnect-button").hidden = true;
  });
  byId<HTMLInputElement>("key-file").addEventListener("change", (e) => {
    const f = (e.target as HTMLInputElement).files?.[0];
    if (f) void loadKey(f);
  });
  byId<HTMLInputElement>("filter").addEventListener("input", (e) => fleetView.setFilter((e.target as HTMLInputElement).value));
  byId<HTMLSelectElement>("sort").addEventListener("change", (e) => fleetView.setSort((e.target as HTMLSelectElement).value as SortKey));
  window.addEventListener("popstate", () => {
    const m = /^#device=(.+)$/.exec(location.hash);
    if (m?.[1]) openDevice(decodeURIComponent(m[1]));
    else closeDevice();
  });
}

init();
