//! IPv4 longest-prefix match.
