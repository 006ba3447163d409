#
# SPDX-License-Identifier: MIT
#
# Runtime tests of the roomrec image (bitbake roomrec-image -c testimage, or the kas file
# yocto/kas/roomrec-testimage.yml). Needs packagegroup-roomrec-test in the image:
# mosquitto on 127.0.0.1:1883, gst-discoverer-1.0, v4l2-ctl, and on qemux86-64 the vivid
# virtual camera and the snd-aloop ALSA loopback.

import json
import re
import time

from oeqa.core.decorator.depends import OETestDepends
from oeqa.runtime.case import OERuntimeTestCase
from oeqa.runtime.decorator.package import OEHasPackage

SERVICE = "roomrec.service"
DEVICE = "room-101"          # device_id of the image's /etc/roomrec/roomrec.toml
HOST = "u-1"                 # the meeting host, who may record locally (L1 host_only)
LOCAL_DIR = "/var/lib/roomrec/local"
RECORD_SECONDS = 15


class RoomrecTest(OERuntimeTestCase):

    def run_ok(self, cmd, timeout=None, msg=None):
        status, output = self.target.run(cmd, timeout=timeout)
        self.assertEqual(status, 0, msg="%s\n$ %s\n%s" % (msg or "command failed", cmd, output))
        return output

    def journal(self):
        _, output = self.target.run("journalctl -u %s --no-pager -n 80" % SERVICE)
        return output

    def ctl(self, args, timeout=30):
        return self.run_ok("roomrecctl --device %s --timeout 10 %s" % (DEVICE, args),
                           timeout=timeout, msg="roomrecctl failed\n" + self.journal())

    def wait_for(self, what, check, seconds):
        deadline = time.time() + seconds
        while True:
            value = check()
            if value:
                return value
            if time.time() > deadline:
                self.fail("timed out after %d s waiting for %s\n%s" % (seconds, what, self.journal()))
            time.sleep(2)

    @OEHasPackage(["roomrec"])
    def test_roomrec_service_active(self):
        # READY=1 may come late on the first boot (GStreamer builds its plugin registry).
        def active():
            _, out = self.target.run("systemctl is-active %s" % SERVICE)
            return out.strip() == "active"
        self.wait_for("%s to become active" % SERVICE, active, 120)
        out = self.run_ok("systemctl show -p Type -p WatchdogUSec -p NRestarts %s" % SERVICE)
        self.assertIn("Type=notify", out)
        self.assertNotIn("WatchdogUSec=0\n", out + "\n", msg="the unit should set WatchdogSec=")

    @OETestDepends(["roomrec.RoomrecTest.test_roomrec_service_active"])
    def test_roomrec_status_text(self):
        def status_text():
            _, out = self.target.run("systemctl show -p StatusText --value %s" % SERVICE)
            return out.strip()
        text = self.wait_for("STATUS= from roomrecd", status_text, 60)
        self.logger.info("roomrec StatusText: %s" % text)

    @OETestDepends(["roomrec.RoomrecTest.test_roomrec_service_active"])
    @OEHasPackage(["roomrec-ctl"])
    @OEHasPackage(["mosquitto"])
    @OEHasPackage(["gstreamer1.0-plugins-base-apps"])
    def test_roomrec_records_15s_from_vivid(self):
        status, _ = self.target.run("test -c /dev/video0")
        if status != 0:
            self.skipTest("no /dev/video0 (vivid is only built into the qemux86-64 image)")
        # vivid starts at 5 fps; the daemon asks for its own rate, this only makes it sane.
        self.target.run("v4l2-ctl -d /dev/video0 --set-parm=30")
        self.run_ok("systemctl is-active mosquitto.service", msg="the image's broker is not running")

        before = set(self.run_ok("ls -1 %s 2>/dev/null || true" % LOCAL_DIR).split())

        meeting_id = "oeqa-%d" % int(time.time())
        snapshot = {
            "version": int(time.time()), "meeting_id": meeting_id, "state": "active",
            "creator": HOST, "host": HOST, "cohosts": [], "participants": [HOST],
            "sharing": False,
            "account": {"tier": "business", "licence_expires_at": "2099-01-01T00:00:00Z",
                        "cloud_quota_bytes": None, "cloud_used_bytes": 0},
        }
        self.ctl("licence set --valid-until 2099-01-01T00:00:00Z")
        self.run_ok("echo '%s' > /tmp/meeting.json" % json.dumps(snapshot))
        self.ctl("meeting set /tmp/meeting.json")

        self.ctl("send start --as %s kind=local silent=true" % HOST)
        time.sleep(RECORD_SECONDS + 1)
        self.ctl("send stop --as %s" % HOST)

        # Meeting end converts the local recording into one MP4 (L5).
        snapshot["version"] += 1
        snapshot["state"] = "ended"
        self.run_ok("echo '%s' > /tmp/meeting.json" % json.dumps(snapshot))
        self.ctl("meeting set /tmp/meeting.json")

        def new_mp4():
            out = self.run_ok("find %s -name '*.mp4' -size +1k 2>/dev/null || true" % LOCAL_DIR)
            files = [f for f in out.split() if f not in before and f.endswith(".mp4")]
            return files[0] if files else None
        mp4 = self.wait_for("the MP4 of the local recording", new_mp4, 300)

        # Playable: it demuxes, holds H.264 video and audio, and lasts about 15 s.
        info = self.run_ok("gst-discoverer-1.0 -v %s" % mp4, timeout=120,
                           msg="gst-discoverer-1.0 cannot read " + mp4)
        self.assertIn("video/x-h264", info, msg=info)
        self.assertRegex(info, r"audio/x-(opus|raw|mpeg)", msg=info)
        m = re.search(r"Duration: (\d+):(\d+):(\d+\.\d+)", info)
        self.assertIsNotNone(m, msg=info)
        seconds = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
        self.assertGreaterEqual(seconds, RECORD_SECONDS - 3, msg=info)
        self.assertLessEqual(seconds, RECORD_SECONDS + 10, msg=info)
        # Every video access unit parses to the end of the file.
        self.run_ok("gst-launch-1.0 -q filesrc location=%s ! qtdemux name=d d.video_0 "
                    "! h264parse ! fakesink" % mp4, timeout=120,
                    msg="the MP4's H.264 stream does not parse to the end")
        self.ctl("meeting clear")
