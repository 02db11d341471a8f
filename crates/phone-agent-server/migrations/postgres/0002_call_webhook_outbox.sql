-- The end-of-call webhook's outbox (postgres). Keep in step with ../sqlite/0002_call_webhook_outbox.sql.
-- A row is written in the same transaction as the call's record (when call_webhook.url is set)
-- and delivered at least once, even across a restart; the call SID is the idempotency key.
CREATE TABLE call_webhook_outbox (
    call_sid TEXT PRIMARY KEY,
    -- Unix epoch milliseconds.
    created_at_ms BIGINT NOT NULL,
    -- Delivery attempts made so far.
    attempts BIGINT NOT NULL DEFAULT 0,
    -- When the next attempt is due (pending rows only).
    next_attempt_at_ms BIGINT NOT NULL,
    -- Why the last attempt failed.
    last_error TEXT,
    -- Set when delivered (a 2xx answer) ...
    delivered_at_ms BIGINT,
    -- ... or when call_webhook.max_attempts were all refused.
    failed_at_ms BIGINT
);
CREATE INDEX call_webhook_outbox_due ON call_webhook_outbox (next_attempt_at_ms);
