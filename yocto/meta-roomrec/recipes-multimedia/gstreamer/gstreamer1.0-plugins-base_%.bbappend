# opusenc (media.audio_codec = "opus", roomrec's default) is behind PACKAGECONFIG opus;
# textoverlay (the video watermark, W1-W2) behind pango.
PACKAGECONFIG:append:roomrec-os = " opus pango"
