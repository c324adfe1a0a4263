//! Configuration schema (TOML) and validation.
