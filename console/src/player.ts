// Plays one cloud recording straight from the bucket: reads its manifest.json, shows what it
// says (duration, segments, pauses, the completeness report when there is one), and plays its
// HLS playlist with hls.js, the transcript shown as subtitles when there is one, every request
// (playlist, segments, subtitles) presigned in the page as it is made. Must not talk MQTT or parse device messages.

import type Hls from "hls.js";
import { type Bucket, BucketError, failureText } from "./bucket";
import { el, setChildren, setText } from "./dom";
import { MAX_MANIFEST_BYTES, type Manifest, isGarbage, parseManifest } from "./parse";

export class Player {
  readonly root = el("section", { class: "player" });
  private readonly video = el("video", { controls: "", muted: "", playsinline: "", preload: "auto" });
  private readonly info = el("div", { class: "manifest" }, "reading the manifest…");
  private readonly note = el("p", { class: "player-note muted" });
  private hls: Hls | null = null;
  private disposed = false;

  constructor(
    private readonly bucket: Bucket,
    readonly recordingId: string,
    location: string,
    close: () => void,
  ) {
    const x = el("button", { type: "button", class: "close-player" }, "close");
    x.addEventListener("click", close);
    this.video.muted = true;
    this.root.dataset.recording = recordingId;
    setChildren(this.root,
      el("div", { class: "device-head" }, el("h3", {}, `Cloud recording ${recordingId}`), x),
      el("div", { class: "player-body" }, this.video, this.info),
      this.note);
    void this.load(location);
  }

  dispose(): void {
    this.disposed = true;
    this.hls?.destroy();
    this.hls = null;
    this.video.removeAttribute("src");
    this.video.load();
  }

  private fail(text: string): void {
    setText(this.note, text);
    this.note.className = "player-note error";
  }

  private async load(location: string): Promise<void> {
    let folder: string;
    let manifest: Manifest;
    try {
      folder = this.bucket.folderOf(location);
      const parsed = parseManifest(await this.bucket.get(`${folder}manifest.json`, MAX_MANIFEST_BYTES));
      if (isGarbage(parsed)) throw new BucketError(parsed.garbage);
      manifest = parsed;
    } catch (e) {
      setText(this.info, "");
      return this.fail(e instanceof BucketError ? e.message : `cannot read the manifest: ${String(e)}`);
    }
    if (this.disposed) return;
    this.showManifest(manifest);
    // hls.js is loaded only when a recording is played: it is most of the page's code.
    const { default: HlsClass } = await import("hls.js");
    if (this.disposed) return;
    if (!HlsClass.isSupported()) {
      // Native HLS (Safari without MSE) cannot be used: its segment requests cannot be signed.
      return this.fail("this browser has no Media Source Extensions, which the page needs to sign each request of the recording");
    }
    const bucket = this.bucket;
    const hls = new HlsClass({
      // Each request is signed just before it is sent; relative segment URIs resolve against
      // the unsigned playlist URL, and only objects of this folder are signed.
      xhrSetup: async (xhr, url) => xhr.open("GET", await bucket.presign(url, bucket.url(folder)), true),
      enableWorker: true,
    });
    this.hls = hls;
    hls.on(HlsClass.Events.ERROR, (_e, data) => {
      if (!data.fatal) return;
      const status = data.response?.code;
      this.fail(status ? `playback failed: ${data.details}: ${failureText(status, undefined)}` : `playback failed: ${data.details} (the store is unreachable, or its CORS rules do not let this page read)`);
    });
    // The transcript (T1), when the recording has one: shown from the start, since whoever
    // opens a recording here is checking it (the device marks it AUTOSELECT, not DEFAULT).
    // hls.js picks its own initial track (none here) right after this event, so the choice
    // waits for that to be done.
    hls.on(HlsClass.Events.SUBTITLE_TRACKS_UPDATED, (_e, data) => {
      if (data.subtitleTracks.length === 0) return;
      queueMicrotask(() => {
        if (hls.subtitleTrack < 0) hls.subtitleTrack = 0;
      });
    });
    hls.on(HlsClass.Events.MANIFEST_PARSED, () => {
      setText(this.note, `playing ${manifest.playlist} from ${bucket.endpoint.origin}/${bucket.name}/${folder}`);
      this.note.className = "player-note muted";
    });
    hls.loadSource(bucket.url(`${folder}${manifest.playlist}`));
    hls.attachMedia(this.video);
  }

  private showManifest(m: Manifest): void {
    const row = (k: string, v: string) => el("tr", {}, el("th", {}, k), el("td", {}, v));
    const secs = (ms: number | undefined) => (ms === undefined ? "—" : `${(ms / 1000).toFixed(1)} s`);
    const rows = [
      row("meeting", m.meetingId ?? "—"),
      row("creator", m.creator ?? "—"),
      row("created", m.createdAt ?? "—"),
      row("duration", secs(m.durationMs)),
      row("recorded", secs(m.recordedMs)),
      row("segments", `${m.segments} (${secs(m.segmentsMs)})`),
      row("pauses", String(m.pauses)),
      row("bytes", m.bytes === undefined ? "—" : m.bytes.toLocaleString("en")),
      row("shared", m.shared === undefined ? "—" : m.shared ? "yes" : "no"),
    ];
    const parts: HTMLElement[] = [el("table", { class: "kv manifest-table" }, ...rows)];
    if (m.completeness) parts.push(el("h4", {}, "Completeness"), completenessTable(m.completeness));
    setChildren(this.info, ...parts);
  }
}

/**
 * The completeness report as it comes: one row per field, lists (the gaps) one line per item.
 * Its shape is the device's; the page only shows it, as text.
 */
function completenessTable(c: Record<string, unknown>): HTMLElement {
  const text = (v: unknown): string => {
    if (v === null || v === undefined) return "—";
    if (typeof v !== "object") return String(v);
    if (Array.isArray(v)) return v.length === 0 ? "none" : v.map(text).join("\n");
    return Object.entries(v).map(([k, x]) => `${k}: ${typeof x === "object" && x !== null ? JSON.stringify(x) : String(x)}`).join(", ");
  };
  return el("table", { class: "kv completeness" },
    ...Object.entries(c).slice(0, 50).map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, text(v)))));
}
