//! OpenAI GPT-Live wire types (in progress).
