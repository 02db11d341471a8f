-- Outbound calls: who answered, by answering machine detection (`AnsweredBy` of the
-- /twilio/amd callback). The same statement in ../sqlite and ../postgres.
ALTER TABLE calls ADD COLUMN answered_by TEXT;
