# opusenc (media.audio_codec = "opus", roomrec's default) is behind PACKAGECONFIG opus.
PACKAGECONFIG:append:roomrec-os = " opus"
