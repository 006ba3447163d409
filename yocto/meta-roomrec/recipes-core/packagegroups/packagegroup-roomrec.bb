SUMMARY = "roomrec meeting-room appliance"
DESCRIPTION = "The recorder and its command line (packagegroup-roomrec), and what the \
               emulated room and its runtime tests add (packagegroup-roomrec-test): a \
               local MQTT broker, GStreamer's inspection tools, v4l-utils and, on QEMU \
               machines, the vivid and snd-aloop drivers."
SECTION = "multimedia"
LICENSE = "MIT"

# The -test package differs per machine (kernel modules on QEMU), so not allarch.
PACKAGE_ARCH = "${MACHINE_ARCH}"

inherit packagegroup

PACKAGES = "${PN} ${PN}-test"

RDEPENDS:${PN} = "\
    roomrec \
    roomrec-ctl \
"
RDEPENDS:${PN}-test = "\
    ${@'kernel-module-snd-aloop kernel-module-vivid' if 'qemuall' in d.getVar('MACHINEOVERRIDES').split(':') else ''} \
    gstreamer1.0-plugins-base-apps \
    mosquitto \
    v4l-utils \
"
