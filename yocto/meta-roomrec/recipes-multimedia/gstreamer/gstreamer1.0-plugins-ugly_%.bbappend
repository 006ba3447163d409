# x264enc: roomrec's preferred H.264 encoder.
PACKAGECONFIG:append:roomrec-os = " ${@bb.utils.filter('ROOMREC_H264_ENCODERS', 'x264', d)}"
