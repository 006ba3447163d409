#!/usr/bin/env python3
"""Bookkeeping of `hard-reset-campaign` on the host (called by host.sh and check.sh).

  campaign.py after-kill BOOT KILLED_MS RUNNING_SINCE_MS   (QEMU dead, the storage quiescent)
  campaign.py after-boot BOOT                              (the next roomrecd online)
  campaign.py summary
  campaign.py export DIR                                   (the storage, for check.sh)

The storage is on the scenario's disk (RESULTS/disk.img, ext4; DISK_MB in `scenario`): every
check reads it as the guest's next boot will find it. A copy of the image gets its journal
replayed by e2fsck (which must find nothing it cannot repair), the storage folder is copied
out with debugfs, and the files' modification times (the guest's clock, in ns) come from
debugfs too; they are mapped onto the host's clock with the guest clock's offset.

after-kill: copies the catalog (with its -wal/-shm, so that nothing on the real storage is
recovered or checkpointed by the host's SQLite before the guest's roomrecd sees it) and checks
the copy: PRAGMA integrity_check; every sealed segment not released on purpose is on disk with
its catalogued size and SHA-256; every uploaded one is in the bucket with that SHA-256; every
segment sealed before an earlier reset is still catalogued with the same SHA-256 (none lost).
Writes the segments to decode (new since the last reset) to reset-BOOT/decode.txt, and what
the lost-media measure needs to reset-BOOT/state.json. Exit 1 on any failed check.

after-boot: the media lost at the previous reset, as tests/powercut.rs measures it (lost_ms):
how long the open segment had been recording when QEMU was killed less the media the restarted
roomrecd adopted from it. On the host clock: the open segment began when the muxer finished
the last sealed segment (that file's mtime on the disk, mapped from the guest's clock with the
offset from the guest's clock samples: the last one and the host-side mtime of the 9p file it
was appended to), or, before the first boundary of a boot, when the status said both
recordings ran (then the pipeline's start-up is counted too: reported, not asserted). The
guest's sealed_at, mapped the same way, is only reported as the seal's lag.
"""
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys

R = os.environ["ROOMREC_RESULTS"]
DISK = os.path.join(R, "disk.img")
STORAGE_ON_DISK = "/roomrec"  # the guest mounts the disk at /storage, roomrecd's folder in it
S3 = os.environ.get("ROOMREC_S3_DATA", os.path.join(R, "s3", "data"))
BUCKET = "recordings"
RPO_MS = 1000
# What a reset in steady recording may lose before the campaign fails. The RPO itself is
# timing (a GOP, a tick and the disk's flush time, under TCG on a shared host disk whose
# fsync took up to 659 ms): measured and printed against the RPO, never failed on. Twice
# the RPO still fails a daemon that stops flushing the open segment (4 s segments lose
# 2 s on average then) without failing on a slow host.
GUARD_MS = 2 * RPO_MS


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load(path, default):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def clock_offset_ms(boot):
    """Guest wall clock minus host wall clock, in ms, from the guest's last clock sample."""
    path = os.path.join(R, f"clock-{boot}.txt")
    with open(path) as f:
        lines = [line.strip() for line in f if re.fullmatch(r"\d+\.\d+", line.strip())]
    if not lines:
        raise SystemExit(f"FAIL: no guest clock sample in {path}")
    guest_ms = float(lines[-1]) * 1000
    host_ms = os.stat(path).st_mtime_ns / 1e6
    return guest_ms - host_ms


def debugfs(img, commands):
    r = subprocess.run(["debugfs", "-f", "-", img], input=commands, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"FAIL: debugfs on {img}: {r.stderr.strip()}")
    return r.stdout


def guest_mtimes_ms(img, folder, names):
    """Modification times (guest clock, ms, ns-precise) of folder/name for each name."""
    out = debugfs(img, "".join(f"stat {folder}/{n}\n" for n in names))
    # One "mtime: 0xSECONDS:0xEXTRA" line per stat, in order; EXTRA = ns << 2 | epoch bits.
    found = re.findall(r"^\s*mtime: 0x([0-9a-f]+):([0-9a-f]+)", out, re.M)
    if len(found) != len(names):
        raise SystemExit(f"FAIL: debugfs gave {len(found)} mtimes for {len(names)} files")
    times = {}
    for name, (sec, extra) in zip(names, found):
        extra = int(extra, 16)
        seconds = int(sec, 16) + ((extra & 3) << 32)
        times[name] = seconds * 1000 + (extra >> 2) / 1e6
    return times


def export(out):
    """The storage as the guest's next boot will find it, copied to out/storage; and the
    segment files' mtimes on the guest's clock. Exit 1 when the file system is damaged beyond
    what e2fsck repairs by itself."""
    img = os.path.join(out, "disk.img")
    subprocess.run(["cp", "--sparse=always", DISK, img], check=True)
    fsck = subprocess.run(["e2fsck", "-fy", img], capture_output=True, text=True)
    with open(os.path.join(out, "e2fsck.txt"), "w") as f:
        f.write(fsck.stdout + fsck.stderr)
    if fsck.returncode >= 4:
        raise SystemExit(f"FAIL: e2fsck left errors in the disk (exit {fsck.returncode}); see {out}/e2fsck.txt")
    journal = "journal replayed" if "recovering journal" in fsck.stdout + fsck.stderr else "clean"
    dest = os.path.join(out, "storage")
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(out, exist_ok=True)
    debugfs(img, f"rdump {STORAGE_ON_DISK} {out}\n")
    os.rename(os.path.join(out, os.path.basename(STORAGE_ON_DISK)), dest)
    names = sorted(os.listdir(os.path.join(dest, "segments")))
    mtimes = guest_mtimes_ms(img, f"{STORAGE_ON_DISK}/segments", names)
    os.remove(img)
    return dest, mtimes, f"e2fsck exit {fsck.returncode} ({journal})"


def after_kill(boot, killed_at, running_since):
    out = os.path.join(R, f"reset-{boot}")
    os.makedirs(out, exist_ok=True)
    offset = clock_offset_ms(boot)
    st, guest_mtimes, fs_state = export(out)

    def host_mtime_ms(name):
        return guest_mtimes[name] - offset

    for suffix in ("", "-wal", "-shm"):
        src = os.path.join(st, "catalog.sqlite3" + suffix)
        if os.path.exists(src):
            shutil.copy2(src, os.path.join(out, "catalog.sqlite3" + suffix))
    # (The copy, not the export, is opened: the export stays exactly as the disk holds it.)
    db = sqlite3.connect(os.path.join(out, "catalog.sqlite3"))
    ic = db.execute("PRAGMA integrity_check").fetchall()
    fails = []
    if ic != [("ok",)]:
        fails.append(f"catalog integrity_check after reset {boot}: {ic}")
    segs = db.execute(
        "SELECT seq, path, bytes, sha256, sealed_at, duration_ms, released_at FROM segments ORDER BY seq"
    ).fetchall()
    uploads = db.execute(
        "SELECT u.seq, u.object_key, s.sha256 FROM uploads u JOIN segments s ON s.seq = u.seq "
        "WHERE u.state = 'uploaded'"
    ).fetchall()
    needs = db.execute(
        "SELECT id, kind, state FROM recordings ORDER BY created_at"
    ).fetchall()
    db.close()

    checked = load(os.path.join(R, "checked.json"), {})  # seq -> sha256, all resets so far
    decode = []
    on_disk = 0
    for seq, path, size, sha, _sealed_at, _dur, released in segs:
        if released is None:
            p = os.path.join(st, path)
            if not os.path.isfile(p):
                fails.append(f"catalogued segment {seq} ({path}) is missing")
                continue
            if os.path.getsize(p) != size:
                fails.append(f"segment {path}: {os.path.getsize(p)} bytes, catalog says {size}")
            elif sha256(p) != sha:
                fails.append(f"segment {path}: SHA-256 differs from the catalog")
            else:
                on_disk += 1
            if str(seq) not in checked:
                decode.append(p)
    in_bucket = 0
    for seq, key, sha in uploads:
        obj = os.path.join(S3, BUCKET, key or "")
        if not key or not os.path.isfile(obj):
            fails.append(f"segment {seq} is uploaded by the catalog, but {key} is not in the bucket")
        elif sha256(obj) != sha:
            fails.append(f"bucket object {key}: SHA-256 differs from segment {seq}'s")
        else:
            in_bucket += 1
    now = {str(seq): sha for seq, _p, _b, sha, _s, _d, _r in segs}
    lost = [seq for seq, sha in checked.items() if now.get(seq) != sha]
    for seq in lost:
        fails.append(f"segment {seq}, sealed before an earlier reset, is gone or changed")
    new = [seq for seq in now if seq not in checked]
    checked.update(now)
    with open(os.path.join(R, "checked.json"), "w") as f:
        json.dump(checked, f)
    with open(os.path.join(out, "decode.txt"), "w") as f:
        f.writelines(p + "\n" for p in decode)

    last = segs[-1] if segs else None
    last_seq = last[0] if last else -1
    # Where the open segment began, on the host clock: when the muxer finished the last
    # sealed segment (its file's last write). The capture-to-muxer latency is the same at that
    # boundary and at the kill, so it cancels. The guest's sealed_at is only reported: the
    # seal (fsync, SHA-256, catalog commit) comes later than the boundary, by up to ~1 s here.
    boundary = None
    seal_lag = None
    if last and last[6] is None and os.path.basename(last[1]) in guest_mtimes:
        boundary = host_mtime_ms(os.path.basename(last[1]))
        seal_lag = round(last[4] - offset - boundary)
    # A segment boundary in this boot: steady recording. Otherwise the open segment is the
    # first of this boot, and what it lost includes the pipeline's start-up (several seconds
    # under TCG between `recording` in the status and the first byte in the file).
    steady = boundary is not None and boundary >= running_since
    open_since = boundary if steady else running_since
    # The files' last writes (host clock), for the media rate of this boot: under TCG the
    # pipeline produces well under 1 s of media per wall second.
    files = {}
    for name in guest_mtimes:
        m = re.fullmatch(r"0*(\d+)\.\w+", name)
        if m:
            files[int(m.group(1))] = host_mtime_ms(name)
    durations = {seq: dur for seq, _p, _b, _h, _s, dur, _r in segs}
    state = {
        "boot": boot,
        "killed_at": killed_at,
        "running_since": running_since,
        "clock_offset_ms": round(offset, 1),
        "last_seq": last_seq,
        "open_since": open_since,
        "steady": steady,
        "seal_lag_ms": seal_lag,
        "writes": sorted([seq, mt, durations.get(seq)] for seq, mt in files.items() if mt >= running_since),
        "segments": len(segs),
        "new_segments": len(new),
        "lost_segments": len(lost),
        "in_bucket": in_bucket,
        "recordings": needs,
    }
    with open(os.path.join(out, "state.json"), "w") as f:
        json.dump(state, f)
    print(
        f"reset {boot}: catalog integrity_check {'ok' if ic == [('ok',)] else 'FAILED'}; "
        f"{len(segs)} segments catalogued ({len(new)} new), {on_disk} on disk intact, "
        f"{in_bucket} uploaded ones intact in the bucket, {len(lost)} lost; guest clock "
        f"{offset:+.1f} ms vs host; disk: {fs_state}"
    )
    for msg in fails:
        print("FAIL: " + msg)
    return 1 if fails else 0


def after_boot(boot):
    prev = boot - 1
    state = load(os.path.join(R, f"reset-{prev}", "state.json"), None)
    if state is None:
        raise SystemExit(f"FAIL: no record of reset {prev}")
    adopted_ms = 0
    adopted = []
    adopted_ms_each = []
    with open(os.path.join(R, f"roomrecd-{boot}.log"), errors="replace") as f:
        for line in f:
            if "adopted a segment written before the daemon stopped" not in line:
                continue
            m = re.search(r"segment=(\d+).*?duration_ms=(\d+)", line)
            if m and int(m.group(1)) > state["last_seq"]:
                adopted.append(int(m.group(1)))
                adopted_ms_each.append(int(m.group(2)))
                adopted_ms += int(m.group(2))
    open_for = max(0, round(state["killed_at"] - state["open_since"]))
    lost = max(0, open_for - adopted_ms)
    # The media rate of this boot: media of the files written after its first segment
    # boundary (the adopted ones included) over the wall time from that boundary to their
    # last write. None without two files.
    adopted_dur = dict(zip(adopted, adopted_ms_each))
    writes = [[q, mt, d if d is not None else adopted_dur.get(q)] for q, mt, d in state["writes"]]
    rate = None
    if len(writes) >= 2:
        media = sum(d or 0 for _q, _mt, d in writes[1:])
        span = writes[-1][1] - writes[0][1]
        if span > 0 and media > 0:
            # At most real time: more means the files were catching up on a backlog (written
            # in bursts after a stall), when their write times lag the capture.
            rate = min(1.0, media / span)
    lost_media = None if rate is None else max(0, round(open_for * rate - adopted_ms))
    # The slowest flush the killed daemon logged (it logs those over 200 ms; one in flight at
    # the kill is never logged).
    slow = [0]
    with open(os.path.join(R, f"roomrecd-{prev}.log"), errors="replace") as f:
        slow += [int(m) for m in re.findall(r"disk is slow.*?took_ms=(\d+)", f.read())]
    fig = {
        "reset": prev,
        "open_ms": open_for,
        "adopted_ms": adopted_ms,
        "adopted": adopted,
        "lost_ms": lost,
        "media_rate": None if rate is None else round(rate, 3),
        "lost_media_ms": lost_media,
        "segments": state["segments"],
        "lost_segments": state["lost_segments"],
        "clock_offset_ms": state["clock_offset_ms"],
        "steady": state["steady"],
        "seal_lag_ms": state["seal_lag_ms"],
        "slowest_flush_ms": max(slow),
    }
    figures = load(os.path.join(R, "figures.json"), [])
    figures = [f for f in figures if f["reset"] != prev] + [fig]
    with open(os.path.join(R, "figures.json"), "w") as f:
        json.dump(figures, f)
    since = "the last segment boundary" if state["steady"] else "both recordings ran (start-up)"
    print(
        f"reset {prev}: open segment recording for {open_for} ms since {since} when killed, "
        f"{adopted_ms} ms adopted at restart (segments {adopted or 'none'}): {lost} ms lost "
        f"on the wall clock; media rate {fig['media_rate']} s/s, so {lost_media} ms of media "
        f"lost (RPO {RPO_MS} ms)"
        + (f"; seal logged {state['seal_lag_ms']} ms after the boundary" if state["steady"] else "")
    )
    return 0


def summary():
    figures = sorted(load(os.path.join(R, "figures.json"), []), key=lambda f: f["reset"])
    checked = load(os.path.join(R, "checked.json"), {})
    seg_lost = sum(f["lost_segments"] for f in figures)

    def stats(fs, key):
        lost = [f[key] for f in fs if f[key] is not None]
        if not lost:
            return "none"
        return f"mean {round(sum(lost) / len(lost))} ms, max {max(lost)} ms over {len(lost)}"

    steady = [f for f in figures if f["steady"]]
    startup = [f for f in figures if not f["steady"]]
    within = sum(1 for f in steady if (f["lost_media_ms"] or 0) <= RPO_MS)
    print(
        f"hard-reset campaign: resets survived {len(figures)}; segments checked {len(checked)}; "
        f"segments lost {seg_lost}; media lost per reset in steady recording: "
        f"{stats(steady, 'lost_media_ms')} in media time ({within} of {len(steady)} within the "
        f"RPO of {RPO_MS} ms; fails beyond {GUARD_MS} ms), {stats(steady, 'lost_ms')} on the "
        "wall clock (under TCG media runs at 0.4-1x real time)"
    )
    print(f"  before the first boundary of a boot (start-up included): {stats(startup, 'lost_ms')} "
          "on the wall clock")
    print("  per reset (wall ms lost / media ms lost / media rate): " + ", ".join(
        f"{f['reset']}: {f['lost_ms']}/{f['lost_media_ms']}/{f['media_rate']}"
        f"{'' if f['steady'] else ' (start-up)'}" for f in figures))
    for f in steady:
        if (f["lost_media_ms"] or 0) > RPO_MS:
            print(f"  WARN: reset {f['reset']} lost {f['lost_media_ms']} ms of media, beyond the "
                  f"RPO; the slowest flush its daemon logged took {f.get('slowest_flush_ms', 0)} ms")
    return [f["reset"] for f in steady if (f["lost_media_ms"] or 0) > GUARD_MS]


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "after-kill":
        sys.exit(after_kill(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
    elif cmd == "after-boot":
        sys.exit(after_boot(int(sys.argv[2])))
    elif cmd == "export":
        os.makedirs(sys.argv[2], exist_ok=True)
        st, _mtimes, fs_state = export(sys.argv[2])
        print(f"{st} {fs_state}")
    elif cmd == "summary":
        over = summary()
        if over:
            print(f"FAIL: media lost beyond {GUARD_MS} ms (media time) at resets {over}")
            sys.exit(1)
    else:
        raise SystemExit(f"unknown command {cmd}")
