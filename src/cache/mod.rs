//! cache (placeholder until its issue lands).
