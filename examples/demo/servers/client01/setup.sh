#!/bin/sh
# A user's workstation: w3m and psql, set up to reach the shop.
# `labmgr demo` copies this folder to the production server once and runs this.
set -eu
here=$(dirname "$0")
install -m 0600 "$here/pgpass" /root/.pgpass
install -m 0644 "$here/profile.sh" /etc/profile.d/lmdemo.sh
install -m 0755 "$here/workload.sh" /usr/local/bin/lmdemo-workload
