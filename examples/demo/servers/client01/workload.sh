#!/bin/sh
# lmdemo-workload: the demo's business, one simulated hour at a time, run on
# client01 the way users would: invoices issued with psql on db01, users
# logging in to the application on app01 with a browser (each login is a
# PHP session file on app01).
#
#   lmdemo-workload hour 2026-11-21T09:00Z   the hour ending at that time
#   lmdemo-workload hide                     take an invoice of the last hour out of db01
#                                            (kept on client01) and print its number
#   lmdemo-workload unhide                   put it back
# `hide` and `unhide` are the demo's fault: run around one hour's collection,
# they make that hour's dump miss an invoice, as a broken backup quietly would.
set -eu
export PGHOST=db01.demo.test PGDATABASE=shop PGUSER=shop PGPASSFILE=/root/.pgpass
HIDDEN=/var/tmp/lmdemo-hidden-invoice
INVOICES_PER_HOUR=10
USERS="alice bob carol dave erin frank grace heidi"

sql() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

hour() {
    end=$1
    hour_of_day=$(echo "$end" | cut -c12-13 | sed 's/^0//')
    # one transaction: the hour's invoices, 6 minutes apart, issued in order
    n=0
    while [ $n -lt $INVOICES_PER_HOUR ]; do
        minutes=$(( (n + 1) * 60 / INVOICES_PER_HOUR - 60 ))
        customer=$(( (n * 5 + hour_of_day) % 8 + 1 ))
        echo "SELECT issue_invoice($customer, $(( 40 + (n * 97 + hour_of_day * 13) % 900 )).50, '$end'::timestamptz + interval '$minutes min');"
        n=$((n + 1))
    done | sql -1 >/dev/null
    # three users log in to the application
    for i in 0 1 2; do
        user=$(echo $USERS | cut -d' ' -f$(( (hour_of_day + i * 3) % 8 + 1 )))
        w3m -dump "http://app01.demo.test/?user=$user" | grep -q "Logged in as $user" ||
            { echo "app01 did not log $user in" >&2; exit 1; }
    done
}

case "${1:-}" in
    hour) hour "${2:?the hour, e.g. 2026-11-21T09:00Z}" ;;
    hide)
        # not the newest: a lost newest invoice looks like an older backup, not a hole
        no=$(sql -c "SELECT no FROM invoices ORDER BY no DESC OFFSET 4 LIMIT 1")
        [ -n "$no" ] || { echo "no invoice to hide" >&2; exit 1; }
        sql -c "COPY (SELECT * FROM invoices WHERE no = $no) TO STDOUT" > "$HIDDEN"
        sql -c "DELETE FROM invoices WHERE no = $no"
        echo "$no" ;;
    unhide)
        sql -c "COPY invoices FROM STDIN" < "$HIDDEN"
        rm "$HIDDEN" ;;
    *) echo "usage: lmdemo-workload hour TIME | hide | unhide" >&2; exit 2 ;;
esac
