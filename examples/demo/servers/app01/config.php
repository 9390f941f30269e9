<?php
// How the application reaches its database: db01 by its production hostname.
const DB_DSN = 'host=db01.demo.test port=5432 dbname=shop user=shop password=lmdemo-shop connect_timeout=5';
const APP_VERSION = '1.4.2';
