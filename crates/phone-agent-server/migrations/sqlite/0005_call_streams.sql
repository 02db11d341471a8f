-- Why each call's latest media stream ended, written by the instance that ran it before it
-- closed the stream, and read by POST /voice/next on whichever instance Twilio reaches next
-- (call handover at shutdown, the fallback). The same statements in ../sqlite and ../postgres.
CREATE TABLE call_streams (
    call_sid TEXT PRIMARY KEY,
    -- normal | failed | handed_over
    outcome TEXT NOT NULL,
    -- handed_over: the conversation to resume with (JSON array of context items).
    context TEXT,
    -- handed_over: the stream's parameters (JSON array of [name, value]).
    parameters TEXT,
    -- Times the call was handed over so far.
    handovers BIGINT NOT NULL DEFAULT 0,
    updated_at_ms BIGINT NOT NULL
);
-- Times the call was handed over between instances: a handed-over call keeps one record, the
-- latest part's (merged with the earlier parts), never overwritten by an earlier part.
ALTER TABLE calls ADD COLUMN handovers BIGINT NOT NULL DEFAULT 0;
