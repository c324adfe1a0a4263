//! TOML text to typed sections.
//!
//! The document is parsed once into spanned values, then every section and every array
//! element is deserialised on its own. A type error therefore costs only its element: the
//! errors of all elements are collected, each with a path (`port[1].mtu`) found from the
//! error's position, and the line and column.
//!
//! `[[route]]` holds both families: each element becomes a [`RouteCfg`] or a [`Route6Cfg`]
//! that remembers its index in the array.

use std::fmt;
use std::net::IpAddr;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::types::IpCidr;
use super::{Config, ConfigError, ConfigErrors, Route6Cfg, RouteCfg};

const SECTIONS: &str = "[dataplane], [control], [limits], [[port]], [[route]], [[proxy_arp]], \
                        [[proxy_ndp]], [tunnel], [[chassis]], [[network]], [[endpoint]], \
                        [[floating_ip]], [[snat]], [[acl]], [[vrrp]], [bgp]";

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
    let dataplane = doc.table("dataplane").unwrap_or_default();
    let control = doc.table("control").unwrap_or_default();
    let limits = doc.table("limits").unwrap_or_default();
    let ports = doc.array("port");
    let (routes, routes6) = doc.routes();
    let config = Config {
        dataplane,
        control,
        limits,
        ports,
        routes,
        routes6,
        proxy_arp: doc.array("proxy_arp"),
        proxy_ndp: doc.array("proxy_ndp"),
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
        self.indexed_array(name)
            .into_iter()
            .map(|(_, item)| item)
            .collect()
    }

    /// `[[route]]`: the IPv4 and the IPv6 routes, each with its index in the array. A next
    /// hop of the other family than the prefix is reported at its `via`.
    fn routes(&mut self) -> (Vec<RouteCfg>, Vec<Route6Cfg>) {
        let mut routes = Vec::new();
        let mut routes6 = Vec::new();
        for (index, r) in self.indexed_array::<RouteToml>("route") {
            let RouteToml {
                table,
                prefix,
                via,
                port,
            } = r;
            let via_at = via.as_ref().map_or(0, |v| v.span().start);
            match (prefix, via.map(Spanned::into_inner)) {
                (IpCidr::V4(prefix), None) => routes.push(RouteCfg {
                    table,
                    prefix,
                    via: None,
                    port,
                    index,
                }),
                (IpCidr::V4(prefix), Some(IpAddr::V4(via))) => routes.push(RouteCfg {
                    table,
                    prefix,
                    via: Some(via),
                    port,
                    index,
                }),
                (IpCidr::V6(prefix), None) => routes6.push(Route6Cfg {
                    table,
                    prefix,
                    via: None,
                    port,
                    index,
                }),
                (IpCidr::V6(prefix), Some(IpAddr::V6(via))) => routes6.push(Route6Cfg {
                    table,
                    prefix,
                    via: Some(via),
                    port,
                    index,
                }),
                (prefix, Some(via)) => {
                    let (via_family, prefix_family) = if via.is_ipv4() {
                        ("IPv4", "IPv6")
                    } else {
                        ("IPv6", "IPv4")
                    };
                    self.error_at(
                        format!("route[{index}].via"),
                        via_at,
                        format!(
                            "{via} is an {via_family} address but prefix {prefix} is \
                             {prefix_family}: the next hop must be of the prefix's family"
                        ),
                    );
                }
            }
        }
        (routes, routes6)
    }

    /// [`Self::array`] with each element's index in the array.
    fn indexed_array<T: Deserialize<'i>>(&mut self, name: &str) -> Vec<(usize, T)> {
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
            .filter_map(|(i, item)| Some((i, self.element(format!("{name}[{i}]"), item)?)))
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

/// A `[[route]]` element as written: either family, told apart once it is read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteToml {
    #[serde(default = "super::default_table")]
    table: String,
    prefix: IpCidr,
    /// Spanned so that a next hop of the wrong family is reported where it is.
    #[serde(default)]
    via: Option<Spanned<IpAddr>>,
    #[serde(default)]
    port: Option<String>,
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
