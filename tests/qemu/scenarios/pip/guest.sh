# shellcheck shell=bash
# Guest side of `pip`: two vivid instances with one capture node each (/dev/video0: instance 0,
# one webcam input; /dev/video1: instance 1, one HDMI input), each showing a solid colour
# without OSD text (camera red, content blue) so that the host can tell them apart in the MP4;
# snd-aloop with a tone; roomrecd with content = the HDMI node and pip = true.
. "$ROOMREC_QEMU_DIR/lib/guest.sh"
load_vivid n_devs=2 node_types=0x1,0x1 num_inputs=1,1 input_types=0x0,0x3
for d in /dev/video0 /dev/video1; do
  log "$d: $(v4l2-ctl -d "$d" --list-inputs | grep -E 'Name|Type' | tr -s ' \t\n' ' ')"
done
cam=/dev/video0 content=/dev/video1
v4l2-ctl -d $cam --list-inputs | grep -q 'Camera' || fail "$cam is not vivid's webcam: $(v4l2-ctl -d $cam --list-inputs)"
v4l2-ctl -d $content --list-inputs | grep -q 'HDMI' || fail "$content is not vivid's HDMI input: $(v4l2-ctl -d $content --list-inputs)"
webcam_setup $cam
# The HDMI input's size is its DV timing: the smallest of the list (640x480), not 720p, which
# costs too much to generate under TCG.
idx=$(v4l2-ctl -d $content --list-dv-timings | awk '$1 == "Index:" {i = $2} /Active width: 640$/ && !done {print i; done = 1}')
[ -n "$idx" ] || fail "no 640-wide DV timing on $content: $(v4l2-ctl -d $content --list-dv-timings | head -20)"
v4l2-ctl -d $content --set-dv-bt-timings index="$idx" >/dev/null || fail "cannot set DV timing $idx on $content"
log "$content: $(v4l2-ctl -d $content --get-fmt-video | grep -E 'Width/Height|Pixel Format' | tr -s ' \t\n' ' ')"
# Solid colours, no OSD text: menu indices looked up by name.
menu_index() { v4l2-ctl -d "$1" -L | awk -v n="$2" '$0 ~ ": " n "$" && !done {sub(":", "", $1); print $1; done = 1}'; }
red=$(menu_index $cam '100% Red') blue=$(menu_index $content '100% Blue')
[ -n "$red" ] && [ -n "$blue" ] || fail "vivid's test_pattern menu lacks 100% Red/Blue: $(v4l2-ctl -d $cam -L | head -30)"
v4l2-ctl -d $cam --set-ctrl "test_pattern=$red,osd_text_mode=2" || fail "cannot set the camera's pattern"
v4l2-ctl -d $content --set-ctrl "test_pattern=$blue,osd_text_mode=2" || fail "cannot set the content's pattern"
start_tone
MEDIA_SOURCE=v4l2 MEDIA_WIDTH=320 MEDIA_HEIGHT=180 MEDIA_TOML="camera = \"$cam\"
microphone = \"hw:Loopback,1,0\"
content = \"$content\"
pip = true
multistream = false" roomrecd_config "$R/roomrec.toml" "$R/storage"
start_roomrecd "$R/roomrec.toml"
wait_file "$R/host.done" 270
kill -0 "$ROOMRECD_PID" 2>/dev/null || fail "roomrecd died during the scenario"
stop_roomrecd
stop_tone
