# opusparse: Opus from the Matroska segments into the final MP4; openh264enc when chosen;
# voaacenc, roomrec's AAC encoder.
PACKAGECONFIG:append:roomrec-os = " opusparse voaacenc ${@bb.utils.filter('ROOMREC_H264_ENCODERS', 'openh264', d)}"
