#!/bin/sh
# The invoicing web application: Apache with PHP, reading db01 over the LAN;
# users' sessions are files in /var/lib/php/sessions (PHP's default).
# `labmgr demo` copies this folder to the production server once and runs this.
set -eu
here=$(dirname "$0")
install -d -m 0755 /var/www/lmdemo
install -m 0644 "$here/index.php" /var/www/lmdemo/index.php
install -m 0640 -g www-data "$here/config.php" /var/www/lmdemo/config.php
install -m 0644 "$here/site.conf" /etc/apache2/sites-available/lmdemo.conf
a2dissite -q 000-default
a2ensite -q lmdemo
systemctl enable --quiet apache2.service
systemctl restart apache2.service
