# x264enc: roomrec's preferred H.264 encoder.
PACKAGECONFIG:append:roomrec-os = " ${@bb.utils.filter('ROOMREC_H264_ENCODERS', 'x264', d)}"
# scarthgap's -ugly builds the a52dec and mpeg2dec decoders by default; roomrec uses neither,
# and mpeg2dec is LICENSE_FLAGS commercial (bitbake -g roomrec-image stopped on it).
PACKAGECONFIG:remove:roomrec-os = "a52dec mpeg2dec"
