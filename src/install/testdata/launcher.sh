#!/bin/sh
# weft: made by `weft install --systemd`, listed in /etc/weft/install.json; `weft uninstall` removes it.
# Runs the weft package in /usr/local/lib/node_modules/weft with the node in /usr/bin.
export PATH="/usr/bin${PATH:+:$PATH}"
exec /usr/local/lib/node_modules/weft/dist/bin/weft.cjs "$@"
