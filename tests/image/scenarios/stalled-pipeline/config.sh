# shellcheck shell=bash
cp "$here/lib/interrupt-guest.sh" "$R/"
echo "$INTERRUPT" > "$R/interrupt"
