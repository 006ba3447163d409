# shellcheck shell=bash
# The newer package (the same files as version -2, made by tests/image/prepare) for dpkg -i.
cp "$img"/upgrade/roomrec_*.deb "$R/"
