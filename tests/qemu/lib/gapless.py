#!/usr/bin/env python3
"""Gapless check of an MP4 by an independent reader (ffprobe, libavformat), on the host.

    gapless.py MP4 SEGMENT...

The same check as tests/common/ffprobe.rs `assert_gapless`: in every stream of MP4, no step
between consecutive packets (by PTS) above 1.5 packet durations (the median duration) nor two
packets at one time, and the MP4 lasts what the segments recorded within one video frame
(each segment's video span: its first frame to the end of its last). Prints what it found;
exits 1 when the MP4 is not gapless, 2 when a file does not read.
"""

import subprocess
import sys


def ffprobe(args, path):
    out = subprocess.run(["ffprobe", "-v", "error", *args, path],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        print(f"ffprobe {path}: {out.stderr.strip()}")
        sys.exit(2)
    return out.stdout


def kinds(path):
    """The codec type of each stream by index (a TS lists a stream again per program)."""
    found = []
    for line in ffprobe(["-show_entries", "stream=index,codec_type", "-of", "csv=p=0"],
                        path).splitlines():
        fields = line.split(",")
        if len(fields) >= 2 and fields[0].strip().isdigit() and int(fields[0]) == len(found):
            found.append(fields[1].strip())
    return found


def packets(path):
    """(stream, pts, duration or None) of every packet."""
    rows = []
    for line in ffprobe(["-show_packets", "-show_entries",
                         "packet=stream_index,pts_time,duration_time", "-of", "csv=p=0"],
                        path).splitlines():
        fields = [f.strip() for f in line.split(",")]
        try:
            stream, pts = int(fields[0]), float(fields[1])
        except (IndexError, ValueError):
            continue
        try:
            duration = float(fields[2])
        except (IndexError, ValueError):
            duration = None
        rows.append((stream, pts, duration))
    return rows


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def runs(path):
    """Per stream: kind, packet count, usual duration, largest step and where, smallest."""
    every = packets(path)
    result = []
    for index, kind in enumerate(kinds(path)):
        pts = sorted(p for s, p, _ in every if s == index)
        if len(pts) < 2:
            print(f"{path}: stream {index} ({kind}) has no packets")
            sys.exit(2)
        steps = [(b - a, a) for a, b in zip(pts, pts[1:])]
        durations = [d for s, _, d in every if s == index and d and d > 0]
        usual = median(durations) if durations else median([s for s, _ in steps])
        largest = max(steps)
        result.append({"index": index, "kind": kind, "packets": len(pts), "usual": usual,
                       "largest": largest[0], "at": largest[1],
                       "smallest": min(s for s, _ in steps)})
    return result


def video_span(segment):
    video = next(r for r in runs(segment) if r["kind"] == "video")
    pts = [p for s, p, _ in packets(segment) if s == video["index"]]
    return max(pts) - min(pts) + video["usual"]


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        sys.exit(2)
    mp4, segments = sys.argv[1], sys.argv[2:]
    recorded = sum(video_span(s) for s in segments)
    total = float(ffprobe(["-show_entries", "format=duration", "-of", "csv=p=0"], mp4))
    streams = runs(mp4)
    frame = next(r["usual"] for r in streams if r["kind"] == "video")
    bad = []
    for r in streams:
        print(f"{mp4} stream {r['index']} ({r['kind']}): {r['packets']} packets of "
              f"{r['usual'] * 1e3:.1f} ms, largest step {r['largest'] * 1e3:.1f} ms at "
              f"{r['at']:.3f} s, smallest {r['smallest'] * 1e3:.1f} ms")
        if r["largest"] > 1.5 * r["usual"] + 1e-6:
            bad.append(f"stream {r['index']} ({r['kind']}) steps {r['largest'] * 1e3:.1f} ms "
                       f"at {r['at']:.3f} s where its packets last {r['usual'] * 1e3:.1f} ms")
        if r["smallest"] <= 0:
            bad.append(f"stream {r['index']} ({r['kind']}) has two packets at one time")
    print(f"{mp4}: lasts {total:.3f} s for {recorded:.3f} s recorded in {len(segments)} "
          f"segments (one frame {frame * 1e3:.1f} ms)")
    if abs(total - recorded) > frame + 1e-6:
        bad.append(f"lasts {total:.3f} s for {recorded:.3f} s recorded")
    for b in bad:
        print(f"not gapless: {b}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
