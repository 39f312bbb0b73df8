-- The read-only role Grafana's "Provenant index" datasource logs in as.
--
-- psql variables: `reader` (the role name) and `reader_password`. Run it as the role that
-- owns the index tables (the index sink's user), in the index's database:
--   psql -v ON_ERROR_STOP=1 -v reader=provenant_grafana -v reader_password=… -d provenant -f grafana-reader.sql
-- The compose stack runs it once, at the first start of PostgreSQL (10-grafana-reader.sh).
-- It may run again: every statement is idempotent.
--
-- SELECT only: on the tables that exist now and, through default privileges, on the tables
-- the index sink's migrations create later. A dashboard query can read the index but never
-- change it, and a slow one is cut off after 10 s.

SELECT format('CREATE ROLE %I LOGIN', :'reader')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'reader') \gexec
ALTER ROLE :"reader" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'reader_password';
ALTER ROLE :"reader" SET statement_timeout = '10s';
ALTER ROLE :"reader" SET default_transaction_read_only = on;
GRANT CONNECT ON DATABASE :"DBNAME" TO :"reader";
GRANT USAGE ON SCHEMA public TO :"reader";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"reader";
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO :"reader";
