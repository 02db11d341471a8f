-- Call records (PostgreSQL). Keep in step with ../sqlite/0001_calls.sql: the same tables,
-- columns and indexes; only the identity column's syntax differs.
CREATE TABLE calls (
    -- Insertion order: the order of GET /api/calls and its cursor.
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    call_sid TEXT NOT NULL UNIQUE,
    -- Unix epoch milliseconds when this store first heard of the call.
    created_at_ms BIGINT NOT NULL,
    webhook_at_ms BIGINT,
    direction TEXT,
    from_number TEXT,
    to_number TEXT,
    account_sid TEXT,
    end_reason TEXT,
    ended_at_ms BIGINT,
    -- Status callbacks.
    twilio_status TEXT,
    twilio_sequence BIGINT,
    ringing_at_ms BIGINT,
    answered_at_ms BIGINT,
    completed_at_ms BIGINT,
    twilio_duration_secs BIGINT,
    -- The call record as JSON (NULL until the call's stream ended).
    record TEXT
);
CREATE INDEX calls_created_at ON calls (created_at_ms);
CREATE INDEX calls_from_number ON calls (from_number);
CREATE INDEX calls_to_number ON calls (to_number);
