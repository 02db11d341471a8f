//! OpenAI Realtime GA wire types (in progress).
