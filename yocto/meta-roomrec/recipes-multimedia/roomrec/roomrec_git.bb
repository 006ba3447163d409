SUMMARY = "roomrec: the recording daemon of a meeting-room appliance"
SUMMARY:${PN}-ctl = "roomrecctl: inspect and drive a roomrec device over MQTT"
DESCRIPTION = "roomrecd records the room camera and microphone with GStreamer, \
               takes commands over MQTT, keeps a SQLite catalog and uploads to \
               S3-compatible storage; roomrecctl is its command line."
HOMEPAGE = "https://roomrec.invalid/"
SECTION = "multimedia"
# roomrec's own code is "MIT | Apache-2.0"; the binaries also link crates under each of these
# (.ci/check-deps derives this list from Cargo.lock and fails when it is out of step; the
# licences every crate may have are allowed in deny.toml; docs/security.md).
LICENSE = "Apache-2.0 & BSD-2-Clause & BSD-3-Clause & ISC & MIT & Unicode-3.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302 \
                    file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10 \
                    file://${COMMON_LICENSE_DIR}/BSD-2-Clause;md5=cb641bc04cda31daea161b1bc15da69f \
                    file://${COMMON_LICENSE_DIR}/BSD-3-Clause;md5=550794465ba0ec5312d6919e203a55f9 \
                    file://${COMMON_LICENSE_DIR}/ISC;md5=f3b90e78ea0cffb20bf5cca7947a896d \
                    file://LICENSES/Unicode-3.0.txt;md5=548c7e11b6a9486e064814cf1c708e5b"
# oe-core has a generic Unicode-3.0 text only after scarthgap (SPDX list 3.24); on scarthgap
# the repository's copy (the same text) stands in. Naming it where the generic one exists is a
# QA error (license-no-generic), hence the test.
NO_GENERIC_LICENSE[Unicode-3.0] = "${@'' if os.path.isfile(d.expand('${COMMON_LICENSE_DIR}/Unicode-3.0')) else 'LICENSES/Unicode-3.0.txt'}"

# gstreamer-rs (-sys crates) and rusqlite (system libsqlite3) link through pkg-config.
DEPENDS += "glib-2.0 gstreamer1.0 gstreamer1.0-plugins-base sqlite3"

# The source is the repository this layer lives in (ROOMREC_REPO_DIR, set in layer.conf), at
# the head of ROOMREC_GIT_BRANCH. A product build points these at its own mirror and pins
# SRCREV to a commit whose Cargo.lock matches roomrec-crates.inc (see docs/appliance.md).
ROOMREC_GIT_URI ??= "git://${ROOMREC_REPO_DIR};protocol=file"
ROOMREC_GIT_BRANCH ??= "main"

PV = "0.1.0+git"

SRC_URI = "${ROOMREC_GIT_URI};branch=${ROOMREC_GIT_BRANCH};destsuffix=${BPN} \
           file://roomrec.toml \
           "
# One crate:// entry and checksum per Cargo.lock package; regenerate with
# yocto/scripts/gen-crates-inc (or bitbake -c update_crates roomrec).
require ${BPN}-crates.inc

# In-tree builds follow the branch; products set SRCREV to a fixed commit.
# nooelint: oelint.vars.autorev
SRCREV ??= "${AUTOREV}"

S = "${UNPACKDIR}/${BPN}"

inherit cargo cargo-update-recipe-crates pkgconfig systemd useradd

# The H.264 encoder and the AAC path are PACKAGECONFIGs: media.encoder = "auto" takes
# x264enc when present, else openh264enc; media.audio_codec = "aac" takes voaacenc when
# present, else avenc_aac. The daemon records AAC by default (HLS players need it), so "aac"
# (voaacenc: ~40 MB less memory than libav) is on by default; "libav-aac" is the fallback.
# Both are LICENSE_FLAGS commercial, like x264: vo-aacenc (meta-multimedia) needs
# "commercial_vo-aacenc" in LICENSE_FLAGS_ACCEPTED (the kas file sets it).
PACKAGECONFIG ??= "${ROOMREC_H264_ENCODERS} aac"
# x264enc, from gst-plugins-ugly (LICENSE_FLAGS commercial, as is x264).
PACKAGECONFIG[x264] = ",,,gstreamer1.0-plugins-ugly-x264"
# openh264enc, from gst-plugins-bad with openh264 (meta-multimedia).
PACKAGECONFIG[openh264] = ",,,gstreamer1.0-plugins-bad-openh264"
# voaacenc, from gst-plugins-bad with vo-aacenc (meta-multimedia).
PACKAGECONFIG[aac] = ",,,gstreamer1.0-plugins-bad-voaacenc"
# avenc_aac, from gstreamer1.0-libav (LICENSE_FLAGS commercial).
PACKAGECONFIG[libav-aac] = ",,,gstreamer1.0-libav"
# VA-API hardware encoding (Intel/AMD): media.encoder = "auto" uses it when present.
PACKAGECONFIG[vaapi] = ",,,gstreamer1.0-vaapi"
# Transcription (T1): the pocketsphinx GStreamer element and a speech model (the folder named
# by transcription.model_dir). Off by default: neither oe-core nor meta-openembedded packages
# it, so a device maker's layer provides gstreamer1.0-pocketsphinx (pocketsphinx's gst plugin
# with its model); without it `status` says transcription is unavailable and recording is
# unaffected.
PACKAGECONFIG[transcription] = ",,,gstreamer1.0-pocketsphinx"

# videoconvert is its own plugin up to GStreamer 1.22 (scarthgap) and part of
# "videoconvertscale" from 1.24 on (styhead and later).
ROOMREC_GST_VIDEOCONVERT = "${@'gstreamer1.0-plugins-base-videoconvert' if 'scarthgap' in (d.getVar('LAYERSERIES_CORENAMES') or '').split() else 'gstreamer1.0-plugins-base-videoconvertscale'}"

do_install:append() {
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/systemd/roomrec.service ${D}${systemd_system_unitdir}/roomrec.service
    install -d ${D}${nonarch_libdir}/sysusers.d ${D}${nonarch_libdir}/tmpfiles.d
    install -m 0644 ${S}/systemd/roomrec.sysusers ${D}${nonarch_libdir}/sysusers.d/roomrec.conf
    install -m 0644 ${S}/systemd/roomrec.tmpfiles ${D}${nonarch_libdir}/tmpfiles.d/roomrec.conf

    # The configuration may hold S3 credentials: root and group roomrec only.
    install -d -m 0750 ${D}${sysconfdir}/roomrec
    install -m 0640 ${UNPACKDIR}/roomrec.toml ${D}${sysconfdir}/roomrec/roomrec.toml
    chown -R root:roomrec ${D}${sysconfdir}/roomrec

    install -d ${D}${docdir}/roomrec
    install -m 0644 ${S}/docs/appliance.md ${D}${docdir}/roomrec/appliance.md
}

PACKAGES =+ "${PN}-ctl"

FILES:${PN} += "\
    ${nonarch_libdir}/sysusers.d/roomrec.conf \
    ${nonarch_libdir}/tmpfiles.d/roomrec.conf \
"
FILES:${PN}-ctl += "${bindir}/roomrecctl"

# Device-specific; package upgrades keep a locally changed copy.
CONFFILES:${PN} = "${sysconfdir}/roomrec/roomrec.toml"

# GStreamer elements, one runtime package each: exactly the elements src/media creates, plus
# the v4l2 capture source of media.source = "v4l2" (v4l2src, alsasrc, videoconvert).
# .ci/check-yocto compares this list (with the PACKAGECONFIGs above) against the element
# names in the source and fails when they differ.
RDEPENDS:${PN} += "\
    ${ROOMREC_GST_VIDEOCONVERT} \
    gstreamer1.0 \
    gstreamer1.0-plugins-bad-inter \
    gstreamer1.0-plugins-bad-mpegtsdemux \
    gstreamer1.0-plugins-bad-mpegtsmux \
    gstreamer1.0-plugins-bad-opusparse \
    gstreamer1.0-plugins-bad-videoparsersbad \
    gstreamer1.0-plugins-base-alsa \
    gstreamer1.0-plugins-base-app \
    gstreamer1.0-plugins-base-audioconvert \
    gstreamer1.0-plugins-base-audioresample \
    gstreamer1.0-plugins-base-audiotestsrc \
    gstreamer1.0-plugins-base-compositor \
    gstreamer1.0-plugins-base-opus \
    gstreamer1.0-plugins-base-pango \
    gstreamer1.0-plugins-base-playback \
    gstreamer1.0-plugins-base-videorate \
    gstreamer1.0-plugins-base-videoscale \
    gstreamer1.0-plugins-base-videotestsrc \
    gstreamer1.0-plugins-base-volume \
    gstreamer1.0-plugins-good-audioparsers \
    gstreamer1.0-plugins-good-isomp4 \
    gstreamer1.0-plugins-good-jpeg \
    gstreamer1.0-plugins-good-level \
    gstreamer1.0-plugins-good-matroska \
    gstreamer1.0-plugins-good-multifile \
    gstreamer1.0-plugins-good-video4linux2 \
"
# The watermark's font: textoverlay asks fontconfig for "Sans"; Bitstream Vera (oe-core)
# is the face DejaVu Sans, which Debian ships, grew from.
RDEPENDS:${PN} += "ttf-bitstream-vera"

SYSTEMD_SERVICE:${PN} = "roomrec.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

# A locked system user; group video for /dev/video*, audio for /dev/snd/*. Its home is the
# state directory, which systemd creates (StateDirectory=roomrec) with the right owner.
USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system roomrec"
USERADD_PARAM:${PN} = "--system --gid roomrec --groups video,audio \
                       --home-dir ${localstatedir}/lib/roomrec --no-create-home \
                       --shell ${base_sbindir}/nologin roomrec"
