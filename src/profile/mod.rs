//! profile (placeholder until its issue lands).
