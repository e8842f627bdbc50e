//! plan (placeholder until its issue lands).
