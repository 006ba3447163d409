// The device view: one device's status, alarms, state, events, level meter, preview picture,
// recordings (a cloud one plays in a Player) and the command panel. Built once when opened;
// each section is redrawn only when its part of the device changed. Must not parse payloads,
// sign or talk MQTT (it calls `send`).

import type { Bucket } from "./bucket";
import { el, setChildren, setText, duration } from "./dom";
import { type Change, type Device, completenessOf, garbageText, recordingSummary } from "./model";
import { Player } from "./player";

/** What the command panel asks main.ts to send. */
export interface CommandRequest {
  actor: string;
  action: string;
  fields: Record<string, unknown>;
}

const DBFS_FLOOR = -60;

export class DeviceView {
  private readonly garbage = el("p", { class: "garbage-note", hidden: "" });
  private readonly statusBox = el("div", { class: "status" });
  private readonly alarms = el("ul", { class: "alarm-list" });
  private readonly stateBox = el("div", { class: "state" });
  private readonly events = el("ol", { class: "events" });
  private readonly meters = el("div", { class: "meters" }, "no levels received");
  private readonly preview = el("img", { class: "preview", alt: "preview picture", hidden: "" });
  private readonly previewNote = el("p", { class: "muted" }, "no preview received");
  private previewUrl: string | null = null;
  private readonly recordings = el("div", { class: "recordings" }, "send list_recordings to see them");
  private readonly playerSlot = el("div", { class: "player-slot" });
  private player: Player | null = null;
  private readonly commandLog = el("ol", { class: "command-log" });
  private readonly actor = el("input", { type: "text", class: "actor", list: "actor-choices", size: "16" });
  private readonly actorChoices = el("datalist", { id: "actor-choices" });
  private readonly target = el("select", { class: "target" });

  constructor(
    readonly root: HTMLElement,
    private readonly device: Device,
    private readonly adminActor: () => string | null,
    private readonly send: (req: CommandRequest) => void,
    close: () => void,
    private readonly bucket: () => Bucket | null,
  ) {
    const back = el("button", { type: "button", class: "back" }, "← fleet");
    back.addEventListener("click", close);
    for (const [value, label] of [["", "either"], ["cloud", "cloud"], ["local", "local"]] as const) {
      this.target.append(el("option", { value }, label));
    }
    this.actor.value = adminActor() ?? "";
    setChildren(
      root,
      el("div", { class: "device-head" }, back, el("h2", {}, device.id)),
      this.garbage,
      el("div", { class: "grid" },
        el("section", {}, el("h3", {}, "Status"), this.statusBox, el("h3", {}, "Alarms"), this.alarms),
        el("section", {}, el("h3", {}, "Picture"), this.preview, this.previewNote, el("h3", {}, "Microphone"), this.meters),
        el("section", {}, el("h3", {}, "Recording"), this.stateBox),
        el("section", { class: "commands" }, el("h3", {}, "Commands"), this.commandPanel(), this.commandLog),
        el("section", {}, el("h3", {}, "Recent events"), this.events),
        el("section", { class: "wide" }, el("h3", {}, "Recordings"), this.recordings, this.playerSlot),
      ),
    );
    for (const c of ["status", "state", "events", "levels", "preview", "commands"] as Change[]) this.update(c);
  }

  get deviceId(): string {
    return this.device.id;
  }

  /** Frees the preview's Blob URL and stops the player. */
  dispose(): void {
    if (this.previewUrl) URL.revokeObjectURL(this.previewUrl);
    this.previewUrl = null;
    this.closePlayer();
  }

  private closePlayer(): void {
    this.player?.dispose();
    this.player = null;
    setChildren(this.playerSlot);
  }

  /** Plays cloud recording `id` from the bucket, in place of any other being played. */
  private play(id: string, location: string): void {
    this.closePlayer();
    const bucket = this.bucket();
    if (!bucket) {
      setChildren(this.playerSlot, el("p", { class: "error player-note" },
        "load the bucket's read credentials (above) to play cloud recordings"));
      return;
    }
    this.player = new Player(bucket, id, location, () => this.closePlayer());
    setChildren(this.playerSlot, this.player.root);
  }

  update(change: Change): void {
    const g = garbageText(this.device);
    this.garbage.hidden = g === null;
    setText(this.garbage, g === null ? "" : `Reporting garbage: ${g}`);
    switch (change) {
      case "status":
        return this.drawStatus();
      case "state":
        return this.drawState();
      case "events":
        this.drawRecordings(); // a conversion_done or recording_ready brings a report
        return this.drawEvents();
      case "levels":
        return this.drawLevels();
      case "preview":
        return this.drawPreview();
      case "commands":
        this.drawState();
        this.drawRecordings();
        return this.drawCommands();
    }
  }

  private commandPanel(): HTMLElement {
    const button = (label: string, action: string, fields: () => Record<string, unknown>) => {
      const b = el("button", { type: "button", "data-action": action, "data-label": label }, label);
      b.addEventListener("click", () => this.send({ actor: this.actor.value.trim(), action, fields: fields() }));
      return b;
    };
    const targetField = (): Record<string, unknown> => (this.target.value ? { target: this.target.value } : {});
    const kind = (): Record<string, unknown> => ({ kind: this.target.value || "cloud" });
    return el("div", { class: "command-panel" },
      el("label", {}, "Actor ", this.actor, this.actorChoices),
      el("p", { class: "muted hint" },
        "admin:<name> commands are signed with the loaded key; the device accepts from administrators only " +
        "status, list_recordings, mute, preview (a picture now; never of a meeting that is on and not recorded) and recording upkeep. Start, stop, pause and resume are the meeting's: " +
        "send them as a participant (the device checks that participant's role; not signed)."),
      el("div", { class: "buttons" },
        el("label", {}, "cloud/local ", this.target),
        button("start", "start", kind),
        button("stop", "stop", targetField),
        button("pause", "pause", targetField),
        button("resume", "resume", targetField),
      ),
      el("div", { class: "buttons" },
        button("status", "status", () => ({})),
        button("list recordings", "list_recordings", () => ({})),
        button("take picture", "preview", () => ({})),
      ),
    );
  }

  private drawStatus(): void {
    const s = this.device.status;
    if (!s) {
      setChildren(this.statusBox, "no readable status yet");
      setChildren(this.alarms);
      return;
    }
    const row = (k: string, v: string) => el("tr", {}, el("th", {}, k), el("td", {}, v));
    setChildren(this.statusBox, el("table", { class: "kv" },
      row("online", s.online ? "online" : "offline (last will or clean stop)"),
      row("version", s.version ?? "—"),
      row("uptime", duration(s.uptimeS)),
      row("camera", s.camera ?? "—"),
      row("microphone", s.microphone ?? "—"),
      row("recording time left", duration(s.remainingRecordS)),
      row("uploads pending", s.uploadsPending === undefined ? "—" : String(s.uploadsPending)),
      row("last upload error", s.uploadError ?? "none"),
    ));
    if (s.alarms.length === 0) {
      setChildren(this.alarms, el("li", { class: "muted" }, "none"));
    } else {
      setChildren(this.alarms, ...s.alarms.map((a) =>
        el("li", { class: `alarm severity-${a.severity.replace(/[^a-z]/g, "")}` },
          el("strong", {}, a.severity), ` ${a.id} since ${a.since}: `, a.message)));
    }
  }

  private drawState(): void {
    const st = this.device.state;
    if (!st) {
      setChildren(this.stateBox, "no readable state yet");
      return;
    }
    setChildren(this.stateBox,
      el("p", { class: "summary" }, recordingSummary(this.device)),
      el("p", {}, `meeting: ${st.meetingId ?? "none"} · muted: ${st.muted === undefined ? "?" : st.muted ? "yes" : "no"}`),
      el("pre", {}, JSON.stringify(st.raw, null, 1)),
    );
    const choices = [this.adminActor(), ...st.participants].filter((c): c is string => !!c);
    setChildren(this.actorChoices, ...choices.map((c) => el("option", { value: c })));
  }

  private drawEvents(): void {
    setChildren(this.events, ...this.device.events.map(({ received, event }) => {
      if ("garbage" in event) return el("li", { class: "garbage" }, `${received.toLocaleTimeString()} unreadable event: ${event.garbage}`);
      const { type: _t, at: _a, to: _to, ...rest } = event.raw;
      return el("li", {}, el("strong", {}, event.type), ` ${event.at ?? ""} `, el("code", {}, JSON.stringify(rest)));
    }));
  }

  private drawLevels(): void {
    const levels = this.device.levels;
    if (!levels) return;
    const pct = (db: number) => `${Math.max(0, Math.min(100, ((db - DBFS_FLOOR) / -DBFS_FLOOR) * 100))}%`;
    const fmt = (db: number) => (Number.isFinite(db) ? db.toFixed(1) : "−∞");
    setChildren(this.meters, ...levels.map((c, i) => {
      const peak = el("div", { class: "peak" });
      const rms = el("div", { class: "rms" });
      peak.style.width = pct(c.peak);
      rms.style.width = pct(c.rms);
      return el("div", { class: "meter-row" },
        el("span", { class: "channel" }, levels.length > 1 ? `ch ${i + 1}` : "mic"),
        el("div", { class: "meter" }, peak, rms),
        el("span", { class: "db" }, `peak ${fmt(c.peak)} / rms ${fmt(c.rms)} dBFS`));
    }));
  }

  private drawPreview(): void {
    if (this.previewUrl) URL.revokeObjectURL(this.previewUrl);
    this.previewUrl = null;
    const p = this.device.preview;
    this.preview.hidden = !p;
    if (p) {
      this.previewUrl = URL.createObjectURL(new Blob([p as BlobPart], { type: "image/jpeg" }));
      this.preview.src = this.previewUrl;
      setText(this.previewNote, `received ${this.device.previewAt?.toLocaleTimeString() ?? ""}`);
    } else {
      this.preview.removeAttribute("src");
    }
  }

  private drawRecordings(): void {
    const recs = this.device.recordings;
    if (!recs) return;
    if (recs.length === 0) {
      setChildren(this.recordings, "the device keeps no recordings");
      return;
    }
    const cols = ["recording_id", "kind", "state", "owner", "created_at", "recorded_ms", "bytes", "shared", "location"];
    const cell = (v: unknown) => el("td", {}, v === undefined || v === null ? "" : typeof v === "string" ? v : JSON.stringify(v));
    const playCell = (r: Record<string, unknown>) => {
      const id = r.recording_id;
      const location = r.location;
      if (r.kind !== "cloud" || typeof id !== "string" || typeof location !== "string") return el("td", {});
      const b = el("button", { type: "button", class: "play", "data-recording": id }, "play");
      b.addEventListener("click", () => this.play(id, location));
      return el("td", {}, b);
    };
    // The completeness report's figures, from the event that finished the recording.
    const report = (r: Record<string, unknown>) =>
      el("td", { class: "completeness" }, completenessOf(this.device, r.recording_id) ?? "");
    setChildren(this.recordings, el("table", { class: "recording-table" },
      el("thead", {}, el("tr", {}, ...cols.map((c) => el("th", {}, c)), el("th", {}, "completeness"), el("th", {}, ""))),
      el("tbody", {}, ...recs.map((r) => el("tr", {}, ...cols.map((c) => cell(r[c])), report(r), playCell(r)))),
    ));
  }

  private drawCommands(): void {
    setChildren(this.commandLog, ...this.device.commands.map((c) => {
      let cls = "pending";
      let result = "sent, waiting for the reply";
      if (c.failure) {
        cls = "failed";
        result = `not sent: ${c.failure}`;
      } else if (c.reply?.ok) {
        cls = "ok";
        result = "ok";
      } else if (c.reply) {
        cls = "refused";
        result = `refused: ${c.reply.code ?? "?"}${c.reply.reason ? ` (${c.reply.reason})` : ""}: ${c.reply.message ?? ""}`;
      }
      return el("li", { class: cls, "data-command-id": c.id },
        `${c.sentAt.toLocaleTimeString()} ${c.action} as ${c.actor} (${c.signed ? "signed" : "not signed"}): `,
        el("span", { class: "result" }, result));
    }));
  }
}
