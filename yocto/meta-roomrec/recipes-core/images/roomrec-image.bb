SUMMARY = "roomrec meeting-room appliance image"
DESCRIPTION = "A minimal systemd image that runs roomrecd from boot. With \
               ROOMREC_IMAGE_TEST = 1 (set by yocto/kas/roomrec-testimage.yml) it also \
               carries a local MQTT broker and, on QEMU, a virtual camera and microphone, \
               so that testimage can record in the emulator."
SECTION = "images"
LICENSE = "MIT"

inherit core-image features_check

REQUIRED_DISTRO_FEATURES = "systemd"

ROOMREC_IMAGE_TEST ??= "0"

IMAGE_INSTALL = "\
    packagegroup-core-boot \
    packagegroup-roomrec \
    ${@oe.utils.conditional('ROOMREC_IMAGE_TEST', '1', 'packagegroup-roomrec-test', '', d)} \
    ${CORE_IMAGE_EXTRA_INSTALL} \
"

# Recordings live under /var/lib/roomrec: room for a few test recordings (KiB).
IMAGE_ROOTFS_EXTRA_SPACE = "524288"
