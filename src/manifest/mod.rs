//! manifest (placeholder until its issue lands).
