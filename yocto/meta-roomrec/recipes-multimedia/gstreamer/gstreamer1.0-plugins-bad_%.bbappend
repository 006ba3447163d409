# opusparse: Opus from the Matroska segments into the final MP4; openh264enc when chosen.
PACKAGECONFIG:append:roomrec = " opusparse ${@bb.utils.filter('ROOMREC_H264_ENCODERS', 'openh264', d)}"
