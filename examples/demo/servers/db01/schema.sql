-- The demo's invoicing database. Invoice numbers are strictly sequential
-- (1, 2, 3, ... with no holes, as tax law asks): a lost invoice is a gap, and
-- labmgr's sequence_gaps probe finds gaps.
CREATE ROLE shop LOGIN PASSWORD 'lmdemo-shop';
CREATE DATABASE shop OWNER shop;
\connect shop
SET ROLE shop;

CREATE TABLE customers (
    id   serial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    city text NOT NULL
);

CREATE TABLE invoices (
    no          integer PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers,
    amount      numeric(10, 2) NOT NULL CHECK (amount > 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invoices_created_at ON invoices (created_at);

-- Numbers come from a one-row counter rather than a sequence: a sequence skips
-- a number whenever a transaction rolls back, the counter never does.
CREATE TABLE invoice_counter (last integer NOT NULL);
INSERT INTO invoice_counter VALUES (0);

CREATE FUNCTION issue_invoice(customer integer, amount numeric, at timestamptz DEFAULT now())
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    number integer;
BEGIN
    UPDATE invoice_counter SET last = last + 1 RETURNING last INTO number;
    INSERT INTO invoices (no, customer_id, amount, created_at) VALUES (number, customer, amount, at);
    RETURN number;
END $$;

INSERT INTO customers (name, city) VALUES
    ('Acme Tools', 'Lyon'), ('Bakery Nord', 'Lille'), ('Cobalt Bikes', 'Nantes'),
    ('Delta Print', 'Rennes'), ('Echo Farm', 'Dijon'), ('Fjord Fish', 'Brest'),
    ('Garnet Cafe', 'Tours'), ('Helix Labs', 'Grenoble');
