# On client01 `psql` opens the shop database on db01, and `w3m` the application:
#   psql -c 'SELECT count(*) FROM invoices'
#   w3m http://app01.demo.test/
export PGHOST=db01.demo.test PGDATABASE=shop PGUSER=shop
