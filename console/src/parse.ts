// Reads the devices' payloads, which are untrusted: every function here takes raw bytes and
// returns either a typed value holding only fields of the right type, or `Garbage` with a
// sentence saying what was wrong. Owns the payload shapes of docs/api.md as the console reads
// them; must not touch the page (rendering is in fleet.ts and device.ts).

/** A payload the console could not read; `why` is shown to the admin as text. */
export interface Garbage {
  garbage: string;
}

export interface Alarm {
  id: string;
  severity: string;
  since: string;
  message: string;
}

export interface Status {
  online: boolean;
  version?: string;
  uptimeS?: number;
  camera?: string;
  microphone?: string;
  remainingRecordS?: number;
  freeBytes?: number;
  uploadsPending?: number;
  uploadError?: string;
  alarms: Alarm[];
  raw: Record<string, unknown>;
}

export interface LiveRecording {
  kind: "cloud" | "local";
  recordingId: string;
  state: string;
  owner?: string;
  recordedMs?: number;
}

export interface State {
  meetingId?: string;
  cloudState?: string;
  muted?: boolean;
  recordings: LiveRecording[];
  participants: string[];
  raw: Record<string, unknown>;
}

export interface EventMsg {
  type: string;
  at?: string;
  raw: Record<string, unknown>;
}

export interface ChannelLevel {
  peak: number;
  rms: number;
}

export interface Reply {
  id?: string;
  ok: boolean;
  code?: string;
  message?: string;
  reason?: string;
  recordings?: Record<string, unknown>[];
  raw: Record<string, unknown>;
}

/** The device's own limit for a payload (docs/api.md, "Rules for every payload"). */
export const MAX_JSON_BYTES = 65536;
/** A preview is at most 30 kB by contract; anything far beyond is not a preview. */
export const MAX_PREVIEW_BYTES = 262144;

const decoder = new TextDecoder("utf-8", { fatal: true });

export function isGarbage(v: unknown): v is Garbage {
  return typeof v === "object" && v !== null && "garbage" in v;
}

/** One UTF-8 JSON object, or Garbage. An empty payload is `null` (a cleared retained topic). */
export function jsonObject(bytes: Uint8Array): Record<string, unknown> | Garbage | null {
  if (bytes.length === 0) return null;
  if (bytes.length > MAX_JSON_BYTES) return { garbage: `payload of ${bytes.length} bytes, over the 64 KiB limit` };
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    return { garbage: "payload is not UTF-8" };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { garbage: "payload is not JSON" };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { garbage: "payload is not a JSON object" };
  }
  return value as Record<string, unknown>;
}

const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
const bool = (v: unknown): boolean | undefined => (typeof v === "boolean" ? v : undefined);
const obj = (v: unknown): Record<string, unknown> | undefined =>
  typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;

export function parseStatus(bytes: Uint8Array): Status | Garbage | null {
  const o = jsonObject(bytes);
  if (o === null || isGarbage(o)) return o;
  const online = bool(o.online);
  if (online === undefined) return { garbage: "status without a boolean 'online'" };
  const storage = obj(o.storage);
  const uploads = obj(o.uploads);
  const alarms: Alarm[] = [];
  if (o.alarms !== undefined && o.alarms !== null) {
    if (!Array.isArray(o.alarms)) return { garbage: "status 'alarms' is not a list" };
    for (const a of o.alarms) {
      const ao = obj(a);
      const id = str(ao?.id);
      if (!ao || id === undefined) return { garbage: "status has an alarm without an 'id'" };
      alarms.push({
        id,
        severity: str(ao.severity) ?? "unknown",
        since: str(ao.since) ?? "",
        message: str(ao.message) ?? "",
      });
    }
  }
  return {
    online,
    version: str(o.version),
    uptimeS: num(o.uptime_s),
    camera: str(o.camera),
    microphone: str(o.microphone),
    remainingRecordS: num(storage?.remaining_record_s),
    freeBytes: num(storage?.free_bytes),
    uploadsPending: num(uploads?.pending),
    uploadError: str(uploads?.last_error),
    alarms,
    raw: o,
  };
}

export function parseState(bytes: Uint8Array): State | Garbage | null {
  const o = jsonObject(bytes);
  if (o === null || isGarbage(o)) return o;
  return stateFrom(o);
}

/** The recording state as held in `state` messages and in `ok` replies. */
export function stateFrom(o: Record<string, unknown>): State | Garbage {
  const recordings: LiveRecording[] = [];
  const cloud = obj(o.cloud);
  const cloudId = str(cloud?.recording_id);
  if (cloud && cloudId !== undefined) {
    recordings.push({
      kind: "cloud",
      recordingId: cloudId,
      state: str(cloud.state) ?? "?",
      owner: str(cloud.owner),
      recordedMs: num(cloud.recorded_ms),
    });
  }
  if (o.local !== undefined && o.local !== null) {
    if (!Array.isArray(o.local)) return { garbage: "state 'local' is not a list" };
    for (const l of o.local) {
      const lo = obj(l);
      const id = str(lo?.recording_id);
      if (!lo || id === undefined) return { garbage: "state has a local recording without a 'recording_id'" };
      recordings.push({
        kind: "local",
        recordingId: id,
        state: str(lo.state) ?? "?",
        owner: str(lo.owner),
        recordedMs: num(lo.recorded_ms),
      });
    }
  }
  const views = obj(o.views);
  return {
    meetingId: str(o.meeting_id),
    cloudState: str(cloud?.state),
    muted: bool(o.muted),
    recordings,
    participants: views ? Object.keys(views) : [],
    raw: o,
  };
}

export function parseEvent(bytes: Uint8Array): EventMsg | Garbage | null {
  const o = jsonObject(bytes);
  if (o === null || isGarbage(o)) return o;
  const type = str(o.type);
  if (type === undefined) return { garbage: "event without a 'type'" };
  return { type, at: str(o.at), raw: o };
}

export function parseReply(bytes: Uint8Array): Reply | Garbage | null {
  const o = jsonObject(bytes);
  if (o === null || isGarbage(o)) return o;
  const ok = bool(o.ok);
  if (ok === undefined) return { garbage: "reply without a boolean 'ok'" };
  const error = obj(o.error);
  const recs = Array.isArray(o.recordings)
    ? o.recordings.map(obj).filter((r): r is Record<string, unknown> => r !== undefined)
    : undefined;
  return {
    id: str(o.id),
    ok,
    code: str(error?.code),
    message: str(error?.message),
    reason: str(error?.reason),
    recordings: recs,
    raw: o,
  };
}

/**
 * Audio levels, in whichever shape arrives: `{peak_dbfs, rms_dbfs}` with numbers or lists (one
 * per channel), or `{channels: [{peak_dbfs, rms_dbfs}, ...]}`.
 */
export function parseLevels(bytes: Uint8Array): ChannelLevel[] | Garbage | null {
  const o = jsonObject(bytes);
  if (o === null || isGarbage(o)) return o;
  const pairs: ChannelLevel[] = [];
  const pushPair = (p: unknown, r: unknown) => {
    const peak = num(p);
    const rms = num(r);
    if (peak !== undefined || rms !== undefined) pairs.push({ peak: peak ?? rms ?? -Infinity, rms: rms ?? peak ?? -Infinity });
  };
  if (Array.isArray(o.channels)) {
    for (const c of o.channels) pushPair(obj(c)?.peak_dbfs, obj(c)?.rms_dbfs);
  } else if (Array.isArray(o.peak_dbfs) || Array.isArray(o.rms_dbfs)) {
    const peaks = Array.isArray(o.peak_dbfs) ? o.peak_dbfs : [];
    const rmss = Array.isArray(o.rms_dbfs) ? o.rms_dbfs : [];
    for (let i = 0; i < Math.min(8, Math.max(peaks.length, rmss.length)); i++) pushPair(peaks[i], rmss[i]);
  } else {
    pushPair(o.peak_dbfs, o.rms_dbfs);
  }
  if (pairs.length === 0) return { garbage: "levels without 'peak_dbfs' or 'rms_dbfs'" };
  return pairs.slice(0, 8);
}

/** A JPEG preview (starts with FF D8 FF), or Garbage. */
export function parsePreview(bytes: Uint8Array): Uint8Array | Garbage | null {
  if (bytes.length === 0) return null;
  if (bytes.length > MAX_PREVIEW_BYTES) return { garbage: `preview of ${bytes.length} bytes is too large` };
  if (bytes[0] !== 0xff || bytes[1] !== 0xd8 || bytes[2] !== 0xff) return { garbage: "preview is not a JPEG" };
  return bytes;
}

/** A cloud recording's manifest.json as the console shows it (docs/upload.md). */
export interface Manifest {
  recordingId?: string;
  meetingId?: string;
  creator?: string;
  createdAt?: string;
  durationMs?: number;
  recordedMs?: number;
  bytes?: number;
  shared?: boolean;
  /** The playlist to play: the master playlist (with the transcript) when there is one. */
  playlist: string;
  segments: number;
  /** The sum of the segments' `duration_ms`. */
  segmentsMs: number;
  pauses: number;
  /** The completeness report, when the device writes one; shown as it comes. */
  completeness?: Record<string, unknown>;
}

/** A manifest lists every segment: an hour in 1 s segments is ~700 kB; far beyond is not one. */
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

/** A file name in the recording's folder: no folder part, nothing hidden. */
const FILE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

export function parseManifest(bytes: Uint8Array): Manifest | Garbage {
  if (bytes.length > MAX_MANIFEST_BYTES) return { garbage: `manifest of ${bytes.length} bytes is too large` };
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch {
    return { garbage: "manifest is not UTF-8 JSON" };
  }
  const o = obj(value);
  if (!o) return { garbage: "manifest is not a JSON object" };
  const playlist = str(o.master_playlist) ?? str(o.playlist);
  if (playlist === undefined || !FILE_NAME.test(playlist)) return { garbage: "manifest names no playlist file in its folder" };
  if (!Array.isArray(o.segments)) return { garbage: "manifest 'segments' is not a list" };
  return {
    recordingId: str(o.recording_id),
    meetingId: str(o.meeting_id),
    creator: str(o.creator),
    createdAt: str(o.created_at),
    durationMs: num(o.duration_ms),
    recordedMs: num(o.recorded_ms),
    bytes: num(o.bytes),
    shared: bool(o.shared),
    playlist,
    segments: o.segments.length,
    segmentsMs: o.segments.reduce((sum: number, s) => sum + (num(obj(s)?.duration_ms) ?? 0), 0),
    pauses: Array.isArray(o.pauses) ? o.pauses.length : 0,
    completeness: obj(o.completeness),
  };
}

/**
 * A recording's completeness figures (`completeness` of `conversion_done` or `recording_ready`,
 * docs/api.md) as one line of text: recorded of covered time, the gaps by cause, the silent
 * share. `undefined` when absent or unreadable; a cause that is no plain word is left out.
 */
export function completenessText(v: unknown): string | undefined {
  const o = obj(v);
  const recorded = num(o?.recorded_ms);
  const covered = num(o?.covered_ms);
  if (o === undefined || recorded === undefined || covered === undefined) return undefined;
  const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const parts = [`${secs(recorded)} of ${secs(covered)}`];
  for (const [cause, t] of Object.entries(obj(o.gap_totals) ?? {}).slice(0, 16)) {
    const count = num(obj(t)?.count);
    const total = num(obj(t)?.total_ms);
    if (!/^[a-z_]{1,32}$/.test(cause) || count === undefined || total === undefined) continue;
    parts.push(`${cause.replace(/_/g, " ")} ${count}× ${secs(total)}`);
  }
  const share = num(o.silent_share);
  if (share !== undefined) parts.push(`${Math.round(share * 100)} % silent`);
  return parts.join(" · ");
}
