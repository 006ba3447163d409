// The fleet as the console has seen it: one record per device id found in a topic, updated
// from each message. Owns the routing of a topic to the device field it sets, and what counts
// as "reporting garbage". Must not touch the page.

import {
  type ChannelLevel, type EventMsg, type Garbage, type Reply, type State, type Status,
  completenessText, isGarbage, parseEvent, parseLevels, parsePreview, parseReply, parseState, parseStatus,
} from "./parse";

export const TOPIC_ROOT = "roomrec/v1";
/** Recent events kept per device. */
export const EVENTS_KEPT = 50;

export interface CommandEntry {
  id: string;
  action: string;
  actor: string;
  signed: boolean;
  sentAt: Date;
  reply?: Reply;
  /** Set when the command could not be sent at all. */
  failure?: string;
}

export interface Device {
  id: string;
  status: Status | null;
  state: State | null;
  /** Per topic kind (status, state, events, levels, preview, reply): why its last message was unreadable. */
  garbage: Map<string, string>;
  events: { received: Date; event: EventMsg | Garbage }[];
  levels?: ChannelLevel[];
  levelsAt?: Date;
  preview?: Uint8Array;
  previewAt?: Date;
  recordings?: Record<string, unknown>[];
  recordingsAt?: Date;
  commands: CommandEntry[];
  lastSeen: Date;
}

/** What a message changed, so the views update only that. */
export type Change = "status" | "state" | "events" | "levels" | "preview" | "commands";

export class Fleet {
  readonly devices = new Map<string, Device>();

  device(id: string): Device {
    let d = this.devices.get(id);
    if (!d) {
      d = { id, status: null, state: null, garbage: new Map(), events: [], commands: [], lastSeen: new Date() };
      this.devices.set(id, d);
    }
    return d;
  }

  /** Applies one message; returns the device and what changed, or null if the topic is not ours. */
  apply(topic: string, payload: Uint8Array): { device: Device; change: Change } | null {
    const parts = topic.split("/");
    if (parts.length < 4 || `${parts[0]}/${parts[1]}` !== TOPIC_ROOT) return null;
    const id = parts[2] ?? "";
    const kind = parts[3] ?? "";
    if (id === "") return null;
    const d = this.device(id);
    d.lastSeen = new Date();
    switch (kind) {
      case "status": {
        const s = this.checked(d, kind, parseStatus(payload));
        if (s !== undefined) d.status = s;
        return { device: d, change: "status" };
      }
      case "state": {
        const s = this.checked(d, kind, parseState(payload));
        if (s !== undefined) d.state = s;
        return { device: d, change: "state" };
      }
      case "events": {
        const e = parseEvent(payload);
        if (e === null) return null;
        d.events.unshift({ received: new Date(), event: e });
        d.events.length = Math.min(d.events.length, EVENTS_KEPT);
        return { device: d, change: "events" };
      }
      case "levels": {
        const l = this.checked(d, kind, parseLevels(payload));
        if (l) {
          d.levels = l;
          d.levelsAt = new Date();
        }
        return { device: d, change: "levels" };
      }
      case "preview": {
        const p = this.checked(d, kind, parsePreview(payload));
        if (p !== undefined) {
          d.preview = p ?? undefined;
          d.previewAt = new Date();
        }
        return { device: d, change: "preview" };
      }
      case "reply":
        return this.applyReply(d, payload);
      default:
        return null;
    }
  }

  /** A reply on one of our response topics: matched to the command by its id. */
  private applyReply(d: Device, payload: Uint8Array): { device: Device; change: Change } {
    const r = this.checked(d, "reply", parseReply(payload));
    if (r) {
      const entry = d.commands.find((c) => c.id === r.id);
      if (entry) {
        entry.reply = r;
        if (r.ok && r.recordings) {
          d.recordings = r.recordings;
          d.recordingsAt = new Date();
        }
      }
      const st = r.ok ? r.raw.state : undefined;
      if (st !== undefined && st !== null && typeof st === "object" && !Array.isArray(st)) {
        // The state in an ok reply is newer than the retained one; the next `state` message
        // replaces it again.
        const parsed = parseState(new TextEncoder().encode(JSON.stringify(st)));
        if (parsed && !isGarbage(parsed)) d.state = parsed;
      }
    }
    return { device: d, change: "commands" };
  }

  /** Records or clears a topic's garbage mark; returns the value when it was readable. */
  private checked<T>(d: Device, kind: string, v: T | Garbage | null): T | null | undefined {
    if (v !== null && isGarbage(v)) {
      d.garbage.set(kind, v.garbage);
      return undefined;
    }
    d.garbage.delete(kind);
    return v;
  }
}

/** A device shows as "reporting garbage" while the last message of any kind was unreadable. */
export function garbageText(d: Device): string | null {
  if (d.garbage.size === 0) return null;
  return [...d.garbage].map(([k, why]) => `${k}: ${why}`).join("; ");
}

const SEVERITY_RANK: Record<string, number> = { critical: 4, error: 3, warning: 2, info: 1 };

/** The worst alarm's rank (0 without alarms). */
export function alarmRank(d: Device): number {
  let worst = 0;
  for (const a of d.status?.alarms ?? []) worst = Math.max(worst, SEVERITY_RANK[a.severity] ?? 2);
  return worst;
}

export function isOnline(d: Device): boolean {
  return d.status?.online === true;
}

export function isRecording(d: Device): boolean {
  return (d.state?.recordings ?? []).some((r) => r.state === "recording");
}

/** One line: what the device records now. */
export function recordingSummary(d: Device): string {
  const st = d.state;
  if (!st) return "—";
  if (st.recordings.length === 0) {
    const idle = st.meetingId ? "idle" : "idle, no meeting";
    return st.cloudState === "unavailable" ? `${idle} (cloud unavailable)` : idle;
  }
  return st.recordings
    .map((r) => `${r.kind} ${r.state}${r.recordedMs !== undefined ? ` ${Math.round(r.recordedMs / 1000)} s` : ""}`)
    .join(", ");
}

/** The completeness summary of recording `recordingId`, from the latest `conversion_done` or
 * `recording_ready` the console saw for it (the device lists recordings without it). */
export function completenessOf(d: Device, recordingId: unknown): string | undefined {
  if (typeof recordingId !== "string") return undefined;
  for (const { event } of d.events) {
    if (isGarbage(event) || event.raw.recording_id !== recordingId) continue;
    if (event.type === "conversion_done" || event.type === "recording_ready") {
      return completenessText(event.raw.completeness);
    }
  }
  return undefined;
}
