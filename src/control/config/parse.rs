//! TOML text to typed sections.
//!
//! The document is parsed once into spanned values, then every section and every array
//! element is deserialised on its own. A type error therefore costs only its element: the
//! errors of all elements are collected, each with a path (`port[1].mtu`) found from the
//! error's position, and the line and column.

use std::fmt;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::{Config, ConfigError, ConfigErrors};

const SECTIONS: &str = "[dataplane], [control], [limits], [[port]], [[route]], [[proxy_arp]], \
                        [tunnel], [[chassis]], [[network]], [[endpoint]], [[floating_ip]], [[snat]], [[acl]], [[vrrp]], [bgp]";

/// Parses and type-checks a document; semantic rules are [`super::validate`]'s job.
pub(super) fn parse(src: &str) -> Result<Config, ConfigErrors> {
    let (root, syntax_errors) = DeTable::parse_recoverable(src);
    if !syntax_errors.is_empty() {
        // The recovered tree of a document with syntax errors is partial: reporting its type
        // errors too would only add noise.
        return Err(ConfigErrors(
            syntax_errors
                .iter()
                .map(|e| {
                    let (line, column) = line_col(src, e.span().map_or(0, |s| s.start));
                    ConfigError::new(format!("line {line}, column {column}"), e.message())
                })
                .collect(),
        ));
    }
    let mut doc = Document {
        src,
        root: root.into_inner(),
        errors: Vec::new(),
    };
    let config = Config {
        dataplane: doc.table("dataplane").unwrap_or_default(),
        control: doc.table("control").unwrap_or_default(),
        limits: doc.table("limits").unwrap_or_default(),
        ports: doc.array("port"),
        routes: doc.array("route"),
        proxy_arp: doc.array("proxy_arp"),
        tunnel: doc.table("tunnel"),
        chassis: doc.array("chassis"),
        networks: doc.array("network"),
        endpoints: doc.array("endpoint"),
        floating_ips: doc.array("floating_ip"),
        snat: doc.array("snat"),
        acls: doc.array("acl"),
        vrrp: doc.array("vrrp"),
        bgp: doc.table("bgp"),
    };
    doc.unknown_sections();
    if doc.errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(doc.errors))
    }
}

struct Document<'i> {
    src: &'i str,
    /// Sections not yet taken; what is left at the end is unknown.
    root: DeTable<'i>,
    errors: Vec<ConfigError>,
}

impl<'i> Document<'i> {
    /// A `[name]` section.
    fn table<T: Deserialize<'i>>(&mut self, name: &str) -> Option<T> {
        let value = self.root.remove(name)?;
        if !value.get_ref().is_table() {
            self.error_at(
                name,
                value.span().start,
                format!("must be a table: write [{name}]"),
            );
            return None;
        }
        self.element(name.to_string(), value)
    }

    /// A `[[name]]` array of tables; elements that do not type-check are left out (and
    /// reported).
    fn array<T: Deserialize<'i>>(&mut self, name: &str) -> Vec<T> {
        let Some(value) = self.root.remove(name) else {
            return Vec::new();
        };
        let start = value.span().start;
        let DeValue::Array(items) = value.into_inner() else {
            self.error_at(
                name,
                start,
                format!("must be an array of tables: write [[{name}]]"),
            );
            return Vec::new();
        };
        items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| self.element(format!("{name}[{i}]"), item))
            .collect()
    }

    fn element<T: Deserialize<'i>>(
        &mut self,
        path: String,
        value: Spanned<DeValue<'i>>,
    ) -> Option<T> {
        // Deserialising consumes the value; the copy finds the key an error points at.
        let tree = value.clone();
        match T::deserialize(ValueDeserializer::from(value)) {
            Ok(v) => Some(v),
            Err(e) => {
                let pos = e.span().unwrap_or_else(|| tree.span()).start;
                let path = find(tree.get_ref(), pos, &path).unwrap_or(path);
                self.error_at(path, pos, e.message());
                None
            }
        }
    }

    fn unknown_sections(&mut self) {
        let unknown: Vec<(String, usize)> = self
            .root
            .keys()
            .map(|k| (k.get_ref().to_string(), k.span().start))
            .collect();
        for (key, pos) in unknown {
            self.error_at(
                key,
                pos,
                format!("unknown top-level key, expected one of the sections {SECTIONS}"),
            );
        }
    }

    fn error_at(&mut self, path: impl Into<String>, pos: usize, message: impl fmt::Display) {
        let (line, column) = line_col(self.src, pos);
        self.errors.push(ConfigError::new(
            path,
            format!("{message} (line {line}, column {column})"),
        ));
    }
}

/// The path (`.key`, `[index]`) below `value` of the key or value at byte offset `pos`.
fn find(value: &DeValue<'_>, pos: usize, path: &str) -> Option<String> {
    match value {
        DeValue::Table(table) => table.iter().find_map(|(key, child)| {
            let child_path = format!("{path}.{}", key.get_ref());
            if key.span().contains(&pos) {
                return Some(child_path);
            }
            // A sub-table's own span can be just its header, so look inside before giving up.
            find(child.get_ref(), pos, &child_path)
                .or_else(|| child.span().contains(&pos).then_some(child_path))
        }),
        DeValue::Array(items) => items.iter().enumerate().find_map(|(i, child)| {
            let child_path = format!("{path}[{i}]");
            find(child.get_ref(), pos, &child_path)
                .or_else(|| child.span().contains(&pos).then_some(child_path))
        }),
        _ => None,
    }
}

/// 1-based line and column (in characters) of byte offset `pos`.
fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let before = &src.as_bytes()[..pos.min(src.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |nl| nl + 1);
    // Count characters, not bytes: skip UTF-8 continuation bytes.
    let column = before[line_start..]
        .iter()
        .filter(|b| (**b & 0xc0) != 0x80)
        .count()
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::line_col;

    #[test]
    fn line_col_counts_characters() {
        let src = "a = 1\nbé = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        // "bé " is 4 bytes and 3 characters.
        assert_eq!(line_col(src, 10), (2, 4));
        assert_eq!(line_col(src, 1000), (3, 1));
    }
}
