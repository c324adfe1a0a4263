//! IPv4 longest-prefix match (interim: replaced by the DIR-24-8 table).

use std::collections::HashMap;

#[derive(Debug)]
pub enum LpmError {
    BadLength,
}
impl std::fmt::Display for LpmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("bad prefix length")
    }
}
impl std::error::Error for LpmError {}

#[derive(Default)]
pub struct LpmBuilder {
    routes: Vec<(u32, u8, u32)>,
}
impl LpmBuilder {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn insert(&mut self, prefix: u32, len: u8, value: u32) -> Result<(), LpmError> {
        if len > 32 {
            return Err(LpmError::BadLength);
        }
        self.routes.push((prefix, len, value));
        Ok(())
    }
    pub fn build(self) -> Result<Lpm, LpmError> {
        let mut by_len: Vec<HashMap<u32, u32>> = (0..=32).map(|_| HashMap::new()).collect();
        for (p, l, v) in self.routes {
            let m = if l == 0 { 0 } else { u32::MAX << (32 - l) };
            by_len[l as usize].insert(p & m, v);
        }
        Ok(Lpm { by_len })
    }
}
pub struct Lpm {
    by_len: Vec<HashMap<u32, u32>>,
}
impl Lpm {
    pub const MAX_VALUE: u32 = 1 << 24;
    pub fn lookup(&self, addr: u32) -> Option<u32> {
        for l in (0..=32u32).rev() {
            let m = if l == 0 { 0 } else { u32::MAX << (32 - l) };
            if let Some(v) = self.by_len[l as usize].get(&(addr & m)) {
                return Some(*v);
            }
        }
        None
    }
    pub fn lookup_batch(&self, addrs: &[u32], out: &mut [Option<u32>]) {
        for (a, o) in addrs.iter().zip(out.iter_mut()) {
            *o = self.lookup(*a);
        }
    }
}
