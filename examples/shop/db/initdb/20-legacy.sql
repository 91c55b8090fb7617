-- A legacy database in SQL_ASCII, as old installations have: Latin-1 bytes in names and data.
CREATE DATABASE legacy ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
\connect legacy
CREATE TABLE "kunden_größe" (id integer PRIMARY KEY, "straße" text NOT NULL, note text);
INSERT INTO "kunden_größe" VALUES (1, 'Hauptstraße 1', 'café'), (2, 'Münchner Weg 2', 'naïve ©'),
  (3, 'plain ascii', NULL);
CREATE TABLE invoices (id serial PRIMARY KEY, amount numeric(10,2) NOT NULL, memo text);
INSERT INTO invoices (amount, memo) SELECT n * 1.25, 'réf ' || n FROM generate_series(1, 200) AS n;
