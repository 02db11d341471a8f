-- The list position of a call (postgres): GET /api/calls pages by `list_seq`, not by `id`.
-- Keep in step with ../sqlite/0004_list_position.sql: the same column and index.
--
-- Why: `id` comes from an identity sequence when a transaction INSERTs, but transactions
-- COMMIT in another order (two instances, or one instance's writer and another's). A call
-- whose insert took id 10 but committed after a page showing id 11 and id 9 was read sits
-- between two positions a client has already passed: paging by id skips it forever.
--
-- Fix: a second sequence, drawn when the transaction that first stored the call COMMITS, under
-- one transaction-scoped advisory lock. A deferred constraint trigger runs at commit time and
-- takes the lock; the lock is released only after the commit is visible to other sessions, so
-- a transaction that draws a larger number starts drawing after every smaller number is
-- already visible. Hence a snapshot that shows position N shows every committed call below N,
-- and a call committed later always gets a larger position than anything a reader has seen:
-- it appears at the top of the list, never below a cursor. Only the first insert of a call
-- draws (later upserts of the same call keep the position); the lock is held from the trigger
-- to the end of that commit, on the server (no network round trip inside it), once per call.
ALTER TABLE calls ADD COLUMN list_seq BIGINT;
UPDATE calls SET list_seq = id;
CREATE SEQUENCE calls_list_seq;
SELECT setval('calls_list_seq', COALESCE((SELECT max(id) FROM calls), 0) + 1, false);
CREATE UNIQUE INDEX calls_list_position ON calls (list_seq);

CREATE FUNCTION calls_assign_list_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- 0x70686f6e65: "phone", the lock serializing list positions (held until commit ends).
    PERFORM pg_advisory_xact_lock(482788470373);
    UPDATE calls SET list_seq = nextval('calls_list_seq')
        WHERE id = NEW.id AND list_seq IS NULL;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER calls_list_seq_at_commit
    AFTER INSERT ON calls
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION calls_assign_list_seq();
