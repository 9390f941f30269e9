<?php
// The demo's invoicing application. ?user=NAME logs a user in: PHP keeps the
// session in a file under /var/lib/php/sessions, which labmgr dumps every hour
// with the database. The page lists the newest invoices, read from db01.
require __DIR__ . '/config.php';

session_start();
if (isset($_GET['user'])) {
    $_SESSION['user'] = substr(preg_replace('/[^a-z0-9._-]/i', '', $_GET['user']), 0, 32);
    $_SESSION['since'] = gmdate('Y-m-d\TH:i:s\Z');
}
$_SESSION['views'] = ($_SESSION['views'] ?? 0) + 1;
$user = $_SESSION['user'] ?? 'guest';

function h($text) { return htmlspecialchars((string) $text, ENT_QUOTES); }

$db = @pg_connect(DB_DSN);
if ($db === false) {
    http_response_code(503);
}
?>
<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>Invoicing</title></head>
<body>
<h1>Invoicing</h1>
<p>Logged in as <b><?= h($user) ?></b> (session <?= h(session_id()) ?>, <?= (int) $_SESSION['views'] ?> views)</p>
<?php if ($db === false): ?>
<p>The database on db01 is not answering.</p>
<?php else:
    $totals = pg_fetch_row(pg_query($db, 'SELECT count(*), coalesce(max(no), 0), max(created_at) FROM invoices'));
    $rows = pg_query($db, 'SELECT i.no, c.name, i.amount, i.created_at FROM invoices i
                           JOIN customers c ON c.id = i.customer_id ORDER BY i.no DESC LIMIT 10');
?>
<p>Invoices: <?= h($totals[0]) ?>, newest no. <?= h($totals[1]) ?> issued <?= h($totals[2]) ?></p>
<table border="1">
<tr><th>No.</th><th>Customer</th><th>Amount</th><th>Issued</th></tr>
<?php while ($row = pg_fetch_row($rows)): ?>
<tr><td><?= h($row[0]) ?></td><td><?= h($row[1]) ?></td><td><?= h($row[2]) ?></td><td><?= h($row[3]) ?></td></tr>
<?php endwhile; ?>
</table>
<?php endif; ?>
<footer><hr>Invoicing v<?= h(APP_VERSION) ?> on <?= h(gethostname()) ?></footer>
</body>
</html>
