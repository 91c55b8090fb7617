-- The shop's own database (POSTGRES_DB, UTF8): a little real data.
CREATE TABLE customers (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    city text NOT NULL
);
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    item text NOT NULL,
    quantity integer NOT NULL CHECK (quantity > 0),
    status text NOT NULL DEFAULT 'new',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_status_idx ON orders (status);
INSERT INTO customers (name, city) VALUES ('Zoë Brontë', 'Köln'), ('Łukasz Żółw', 'Gdańsk'), ('渡辺', '東京');
INSERT INTO orders (customer_id, item, quantity, status, created_at)
SELECT 1 + (n % 3), 'item-' || n, 1 + n % 5, 'done', timestamptz '2026-01-01 00:00:00+00' + n * interval '1 minute'
FROM generate_series(1, 500) AS n;
