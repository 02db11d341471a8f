//! Async WebSocket client (in progress).
