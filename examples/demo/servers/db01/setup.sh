#!/bin/sh
# The invoicing database: PostgreSQL on the LAN, with the shop schema.
# `labmgr demo` copies this folder to the production server once and runs this.
set -eu
here=$(dirname "$0")
conf=$(echo /etc/postgresql/*/main)
install -m 0644 "$here/lmdemo.conf" "$conf/conf.d/lmdemo.conf"
# app01 and client01 log in as 'shop' over the LAN; nothing else does
echo "host shop shop 10.66.0.0/24 scram-sha-256" >> "$conf/pg_hba.conf"
systemctl enable --quiet postgresql.service
systemctl restart postgresql.service
runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 < "$here/schema.sql"
