//! Start-up configuration: which drives, how they group into erasure sets, and
//! the quorums that follow. Pure functions of the arguments; no I/O but path
//! canonicalisation for duplicate detection.

pub mod ellipsis;
pub mod topology;

use std::path::PathBuf;

use crate::erasure::{MAX_SET_DRIVES, default_parity};

/// A node's drives grouped into erasure sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub drives: usize,
    pub set_size: usize,
    pub data: usize,
    pub parity: usize,
    /// Drive indices of each set, in shard-position order.
    pub sets: Vec<Vec<usize>>,
}

impl Layout {
    /// Drives that must hold a version for a read to trust it.
    pub fn read_quorum(&self) -> usize {
        self.data
    }

    /// Drives that must commit a write. With `k == m` a write needs one more than
    /// half, so two disjoint halves can never both accept conflicting writes.
    pub fn write_quorum(&self) -> usize {
        if self.data == self.parity { self.data + 1 } else { self.data }
    }

    /// e.g. "1 set of 4 drives, 2 data + 2 parity".
    pub fn describe(&self) -> String {
        let sets = self.sets.len();
        format!(
            "{sets} set{} of {} drive{}, {} data + {} parity",
            if sets == 1 { "" } else { "s" },
            self.set_size,
            if self.set_size == 1 { "" } else { "s" },
            self.data,
            self.parity
        )
    }
}

/// A configuration basalt refuses to start with; the message says what to fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("no drives given: name at least one directory")]
    NoDrives,
    #[error("drive {0} is given twice: every drive must be a distinct directory")]
    DuplicateDrive(String),
    #[error(
        "{0} drives cannot be split evenly into erasure sets of 2 to {max} drives; use a drive count with such a divisor",
        max = MAX_SET_DRIVES
    )]
    NoSetSize(usize),
    #[error("parity {parity} is not possible for sets of {set_size} drives: use 0 to {max}", max = set_size / 2)]
    BadParity { parity: usize, set_size: usize },
}

/// The largest set size in 2..=16 that divides the drive count (1 for one drive).
pub fn set_size(drives: usize) -> Option<usize> {
    if drives == 1 {
        return Some(1);
    }
    (2..=MAX_SET_DRIVES).rev().find(|s| drives.is_multiple_of(*s))
}

/// Groups `drives` into sets; `parity` overrides the default for the set size.
pub fn layout(drives: &[PathBuf], parity: Option<usize>) -> Result<Layout, ConfigError> {
    if drives.is_empty() {
        return Err(ConfigError::NoDrives);
    }
    let mut seen = std::collections::HashSet::new();
    for d in drives {
        let canonical = std::fs::canonicalize(d).unwrap_or_else(|_| d.clone());
        if !seen.insert(canonical) {
            return Err(ConfigError::DuplicateDrive(d.display().to_string()));
        }
    }
    let n = drives.len();
    let size = set_size(n).ok_or(ConfigError::NoSetSize(n))?;
    sets_of(n, size, parity)
}

/// `drives` drives (global indices `0..drives`) in consecutive sets of `size`;
/// `parity` overrides the default for the set size.
pub fn sets_of(drives: usize, size: usize, parity: Option<usize>) -> Result<Layout, ConfigError> {
    let parity = match parity {
        Some(p) if p > size / 2 || (size > 1 && p == size) => {
            return Err(ConfigError::BadParity { parity: p, set_size: size });
        }
        Some(p) => p,
        None => default_parity(size),
    };
    let sets = (0..drives / size).map(|s| (s * size..(s + 1) * size).collect()).collect();
    Ok(Layout { drives, set_size: size, data: size - parity, parity, sets })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(n: usize) -> Vec<PathBuf> {
        (0..n).map(|i| PathBuf::from(format!("/nonexistent/d{i}"))).collect()
    }

    #[test]
    fn layouts() {
        let l = layout(&paths(1), None).unwrap();
        assert_eq!((l.set_size, l.data, l.parity, l.write_quorum()), (1, 1, 0, 1));
        let l = layout(&paths(4), None).unwrap();
        assert_eq!((l.set_size, l.data, l.parity, l.write_quorum()), (4, 2, 2, 3));
        assert_eq!(l.describe(), "1 set of 4 drives, 2 data + 2 parity");
        let l = layout(&paths(16), None).unwrap();
        assert_eq!((l.set_size, l.data, l.parity, l.write_quorum()), (16, 12, 4, 12));
        let l = layout(&paths(32), None).unwrap();
        assert_eq!((l.sets.len(), l.set_size), (2, 16));
        let l = layout(&paths(6), None).unwrap();
        assert_eq!((l.set_size, l.data, l.parity), (6, 3, 3));
        assert_eq!(layout(&paths(17), None), Err(ConfigError::NoSetSize(17)));
        assert!(matches!(layout(&paths(4), Some(3)), Err(ConfigError::BadParity { .. })));
        let mut dup = paths(3);
        dup.push(dup[0].clone());
        assert!(matches!(layout(&dup, None), Err(ConfigError::DuplicateDrive(_))));
        assert_eq!(layout(&[], None), Err(ConfigError::NoDrives));
    }
}
