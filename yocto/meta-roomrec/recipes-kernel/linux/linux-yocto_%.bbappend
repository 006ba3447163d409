# QEMU machines only: the virtual camera (vivid) and ALSA loopback (snd-aloop) that stand in
# for the room's camera and microphone in the emulated room image and its runtime tests.
# (MACHINEOVERRIDES is colon-separated, hence split(':') rather than bb.utils.contains.)
FILESEXTRAPATHS:prepend:roomrec-os := "${THISDIR}/files:"

SRC_URI:append:roomrec-os = " ${@'file://roomrec-test-devices.cfg' if 'qemuall' in d.getVar('MACHINEOVERRIDES').split(':') else ''}"
KERNEL_MODULE_AUTOLOAD:append:roomrec-os = " ${@'vivid snd-aloop' if 'qemuall' in d.getVar('MACHINEOVERRIDES').split(':') else ''}"
