// The fleet table: one row per device, built once and then updated cell by cell when that
// device changes (batched per animation frame), so 200 devices and their messages cost little.
// Owns sorting and filtering. Must not parse payloads or talk MQTT.

import { el, setText, duration } from "./dom";
import { type Device, alarmRank, garbageText, isOnline, isRecording, recordingSummary } from "./model";

interface Row {
  tr: HTMLTableRowElement;
  name: HTMLTableCellElement;
  online: HTMLTableCellElement;
  recording: HTMLTableCellElement;
  alarms: HTMLTableCellElement;
  health: HTMLTableCellElement;
  storage: HTMLTableCellElement;
  version: HTMLTableCellElement;
  /** Lower-cased text the filter searches. */
  haystack: string;
}

export type SortKey = "alarms" | "name" | "recording" | "offline";

export class FleetView {
  private readonly rows = new Map<string, Row>();
  private readonly dirty = new Set<string>();
  private frame = 0;
  private order: string[] = [];
  private sortKey: SortKey = "alarms";
  private filter = "";

  constructor(
    private readonly body: HTMLTableSectionElement,
    private readonly count: HTMLElement,
    private readonly devices: Map<string, Device>,
    private readonly open: (id: string) => void,
  ) {}

  /** Marks a device changed; its row is redrawn at the next frame. */
  changed(id: string): void {
    this.dirty.add(id);
    if (this.frame === 0) this.frame = requestAnimationFrame(() => this.flush());
  }

  setSort(key: SortKey): void {
    this.sortKey = key;
    this.reorder();
  }

  setFilter(text: string): void {
    this.filter = text.trim().toLowerCase();
    for (const row of this.rows.values()) this.applyFilter(row);
    this.updateCount();
  }

  private flush(): void {
    this.frame = 0;
    for (const id of this.dirty) {
      const d = this.devices.get(id);
      if (d) this.update(this.row(d), d);
    }
    this.dirty.clear();
    this.reorder();
    this.updateCount();
  }

  private row(d: Device): Row {
    let row = this.rows.get(d.id);
    if (row) return row;
    const cell = (cls: string) => el("td", { class: cls });
    const name = cell("name");
    const button = el("button", { type: "button", class: "link" }, d.id);
    button.addEventListener("click", () => this.open(d.id));
    name.append(button);
    row = {
      tr: el("tr", { "data-device": d.id }),
      name,
      online: cell("online"),
      recording: cell("recording"),
      alarms: cell("alarms"),
      health: cell("health"),
      storage: cell("storage"),
      version: cell("version"),
      haystack: "",
    };
    row.tr.append(row.name, row.online, row.recording, row.alarms, row.health, row.storage, row.version);
    this.rows.set(d.id, row);
    this.body.append(row.tr);
    return row;
  }

  private update(row: Row, d: Device): void {
    const garbage = garbageText(d);
    const online = d.status === null ? "unknown" : isOnline(d) ? "online" : "offline";
    setText(row.online, online);
    row.tr.dataset.online = online;
    setText(row.recording, recordingSummary(d));
    row.tr.classList.toggle("recording", isRecording(d));
    const alarms = d.status?.alarms ?? [];
    const alarmText = [
      garbage !== null ? `reporting garbage (${garbage})` : "",
      ...alarms.map((a) => `${a.severity}: ${a.message || a.id}`),
    ].filter((s) => s !== "").join(" · ");
    setText(row.alarms, alarmText);
    row.tr.classList.toggle("garbage", garbage !== null);
    row.tr.classList.toggle("alarm", alarms.length > 0);
    row.tr.classList.toggle("offline", online === "offline");
    const s = d.status;
    setText(row.health, s ? `${s.camera ?? "?"} / ${s.microphone ?? "?"}` : "—");
    setText(row.storage, duration(s?.remainingRecordS));
    setText(row.version, s?.version ?? "—");
    row.haystack = `${d.id} ${online} ${row.recording.textContent} ${alarmText}`.toLowerCase();
    this.applyFilter(row);
  }

  private applyFilter(row: Row): void {
    const hidden = this.filter !== "" && !row.haystack.includes(this.filter);
    if (row.tr.hidden !== hidden) row.tr.hidden = hidden;
  }

  /** Sorts the rows, moving DOM nodes only when the order changed. */
  private reorder(): void {
    const ids = [...this.rows.keys()];
    const devices = this.devices;
    const rank = (id: string): number[] => {
      const d = devices.get(id);
      if (!d) return [0];
      switch (this.sortKey) {
        case "alarms":
          return [-alarmRank(d), garbageText(d) !== null ? 0 : 1, isOnline(d) ? 1 : 0];
        case "recording":
          return [isRecording(d) ? 0 : 1];
        case "offline":
          return [isOnline(d) ? 1 : 0];
        case "name":
          return [];
      }
    };
    const keys = new Map(ids.map((id) => [id, rank(id)]));
    ids.sort((a, b) => {
      const ka = keys.get(a) ?? [];
      const kb = keys.get(b) ?? [];
      for (let i = 0; i < Math.max(ka.length, kb.length); i++) {
        const diff = (ka[i] ?? 0) - (kb[i] ?? 0);
        if (diff !== 0) return diff;
      }
      return a < b ? -1 : a > b ? 1 : 0;
    });
    if (ids.length === this.order.length && ids.every((id, i) => id === this.order[i])) return;
    this.order = ids;
    for (const id of ids) {
      const row = this.rows.get(id);
      if (row) this.body.append(row.tr);
    }
  }

  private updateCount(): void {
    let online = 0;
    let shown = 0;
    for (const [id, row] of this.rows) {
      if (!row.tr.hidden) shown++;
      const d = this.devices.get(id);
      if (d && isOnline(d)) online++;
    }
    setText(this.count, `${this.rows.size} devices, ${online} online${shown < this.rows.size ? `, ${shown} shown` : ""}`);
  }
}
