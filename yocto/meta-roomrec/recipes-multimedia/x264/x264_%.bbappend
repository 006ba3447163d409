# roomrec links libx264 through GStreamer's x264enc; the x264 command line's ffmpeg input
# (lavf, swscale: on by default from wrynose) is not needed, and ffmpeg is LICENSE_FLAGS
# commercial (bitbake -g roomrec-image on wrynose stopped on it).
PACKAGECONFIG:remove:roomrec-os = "ffmpeg"
