-- The list position of a call (SQLite): GET /api/calls pages by `list_seq`, not by `id`.
-- Keep in step with ../postgres/0004_list_position.sql: the same column and index.
--
-- In PostgreSQL, ids are drawn at INSERT and transactions commit in another order, so the
-- position is drawn at commit under a lock (see there). SQLite runs one write transaction at a
-- time (the database's write lock is taken at the first write and held until the commit), so
-- AUTOINCREMENT ids are already in commit order and the position is the id itself.
ALTER TABLE calls ADD COLUMN list_seq INTEGER GENERATED ALWAYS AS (id) VIRTUAL;
CREATE UNIQUE INDEX calls_list_position ON calls (list_seq);
