//! In-memory backend for tests and benches.
