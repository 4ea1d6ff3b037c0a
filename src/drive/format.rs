//! `format.json`: which deployment a drive belongs to and where it sits in the
//! set layout. Written when a drive is first formatted, verified at every start,
//! so a drive from another deployment or moved to another position is refused.
//!
//! The file is `{"version":1,"checksum":"<xxh3 hex of format json>","format":{...}}`.
//! Formatting happens once at start-up, before the executors run, so this module
//! uses blocking std::fs on purpose.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{MULTIPART_DIR, SYS_VOLUME, TMP_DIR};

/// Version of the format file; an unknown one is refused.
pub const FORMAT_VERSION: u32 = 1;
pub const FORMAT_FILE: &str = "format.json";

/// The layout recorded on every drive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Format {
    pub deployment_id: String,
    /// This drive's id.
    pub drive_id: String,
    /// Drive ids of every set, in position order.
    pub sets: Vec<Vec<String>>,
}

#[derive(Serialize, Deserialize)]
struct FormatFile {
    version: u32,
    checksum: String,
    format: Format,
}

/// Why start-up refuses the drives it was given.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("drive {path}: {why}")]
    Drive { path: PathBuf, why: String },
    #[error("{0}")]
    Layout(String),
}

fn checksum(format: &Format) -> String {
    let body = serde_json::to_vec(format).expect("format always serialises");
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&body))
}

pub fn format_path(root: &Path) -> PathBuf {
    root.join(SYS_VOLUME).join(FORMAT_FILE)
}

/// Reads a drive's format; `Ok(None)` when the drive was never formatted.
pub fn read_format(root: &Path) -> Result<Option<Format>, FormatError> {
    let path = format_path(root);
    let bad = |why: String| FormatError::Drive { path: root.to_path_buf(), why };
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(bad(format!("cannot read {}: {e}", path.display()))),
    };
    let file: FormatFile = serde_json::from_slice(&text).map_err(|e| {
        bad(format!("{} is corrupt ({e}); if this drive was replaced, delete the file to re-format it", path.display()))
    })?;
    if file.version != FORMAT_VERSION {
        return Err(bad(format!("{} has unknown version {}", path.display(), file.version)));
    }
    if file.checksum != checksum(&file.format) {
        return Err(bad(format!(
            "{} fails its checksum; if this drive was replaced, delete the file to re-format it",
            path.display()
        )));
    }
    Ok(Some(file.format))
}

/// Writes a drive's format durably and creates its system folders.
pub fn write_format(root: &Path, format: &Format) -> std::io::Result<()> {
    let sys = root.join(SYS_VOLUME);
    std::fs::create_dir_all(sys.join(TMP_DIR))?;
    std::fs::create_dir_all(sys.join(MULTIPART_DIR))?;
    let file = FormatFile { version: FORMAT_VERSION, checksum: checksum(format), format: format.clone() };
    let text = serde_json::to_vec_pretty(&file).expect("format always serialises");
    // A unique temp name: two writers of the same format (a cluster's first node
    // and the drive's own node at start-up) must not rename each other's file.
    let tmp = sys.join(format!("{FORMAT_FILE}.{}.tmp", uuid::Uuid::new_v4()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, sys.join(FORMAT_FILE))?;
    std::fs::File::open(&sys)?.sync_all()?;
    std::fs::File::open(root)?.sync_all()?;
    Ok(())
}

/// What start-up decided about the drives.
#[derive(Debug, Clone)]
pub struct Formatted {
    pub deployment_id: String,
    /// Format per drive, in argument order.
    pub formats: Vec<Format>,
    /// Drives that had no format and were (re)formatted now.
    pub fresh: Vec<usize>,
}

/// Formats unformatted drives and verifies formatted ones. `roots` are in argument
/// order; `set_size` drives form each set, in that order.
pub fn load_or_format(roots: &[PathBuf], set_size: usize) -> Result<Formatted, FormatError> {
    for root in roots {
        std::fs::create_dir_all(root)
            .map_err(|e| FormatError::Drive { path: root.clone(), why: format!("cannot create the directory: {e}") })?;
    }
    let existing: Vec<Option<Format>> = roots.iter().map(|r| read_format(r)).collect::<Result<_, _>>()?;
    let reference = pick_reference(&existing)?;
    let (deployment_id, sets) = match reference {
        Some(f) => (f.deployment_id.clone(), f.sets.clone()),
        None => {
            let sets =
                roots.chunks(set_size).map(|c| c.iter().map(|_| uuid::Uuid::new_v4().to_string()).collect()).collect();
            (uuid::Uuid::new_v4().to_string(), sets)
        }
    };
    let flat: Vec<&String> = sets.iter().flatten().collect();
    if flat.len() != roots.len() || sets.first().map(|s| s.len()) != Some(set_size) {
        return Err(FormatError::Layout(format!(
            "the drives were formatted as {} drives in sets of {}, but {} drives in sets of {} were given; \
             start basalt with the same drives in the same order",
            flat.len(),
            sets.first().map_or(0, |s| s.len()),
            roots.len(),
            set_size
        )));
    }
    let mut formats = Vec::with_capacity(roots.len());
    let mut fresh = Vec::new();
    for (position, (root, found)) in roots.iter().zip(existing).enumerate() {
        let format = match found {
            Some(f) => {
                if f.deployment_id != deployment_id {
                    return Err(FormatError::Drive {
                        path: root.clone(),
                        why: format!(
                            "belongs to another deployment ({}, this one is {deployment_id}); refusing to use it",
                            f.deployment_id
                        ),
                    });
                }
                if f.drive_id != *flat[position] {
                    let was = flat.iter().position(|id| **id == f.drive_id);
                    return Err(FormatError::Drive {
                        path: root.clone(),
                        why: match was {
                            Some(p) => format!(
                                "is in the wrong position: it was formatted as drive {} but is given as drive {}; \
                                 keep the drive order of the first start",
                                p + 1,
                                position + 1
                            ),
                            None => format!("has drive id {} which is not part of this deployment", f.drive_id),
                        },
                    });
                }
                f
            }
            None => {
                let f = Format {
                    deployment_id: deployment_id.clone(),
                    drive_id: flat[position].clone(),
                    sets: sets.clone(),
                };
                write_format(root, &f).map_err(|e| FormatError::Drive {
                    path: root.clone(),
                    why: format!("cannot write {}: {e}", format_path(root).display()),
                })?;
                fresh.push(position);
                f
            }
        };
        formats.push(format);
    }
    Ok(Formatted { deployment_id, formats, fresh })
}

/// The layout most formatted drives agree on; drives that disagree are refused
/// one by one in [`load_or_format`].
fn pick_reference(existing: &[Option<Format>]) -> Result<Option<&Format>, FormatError> {
    let mut best: Option<(&Format, usize)> = None;
    for f in existing.iter().flatten() {
        let votes =
            existing.iter().flatten().filter(|g| g.deployment_id == f.deployment_id && g.sets == f.sets).count();
        if best.is_none_or(|(_, v)| votes > v) {
            best = Some((f, votes));
        }
    }
    Ok(best.map(|(f, _)| f))
}

/// Empties `.basalt.sys/tmp`: leftovers of writes interrupted by a crash.
pub fn clean_tmp(root: &Path) -> std::io::Result<usize> {
    let tmp = root.join(SYS_VOLUME).join(TMP_DIR);
    let mut removed = 0;
    for entry in std::fs::read_dir(&tmp)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_then_verify_then_refuse_moves() {
        let dir = tempfile::tempdir().unwrap();
        let roots: Vec<PathBuf> = (0..4).map(|i| dir.path().join(format!("d{i}"))).collect();
        let first = load_or_format(&roots, 4).unwrap();
        assert_eq!(first.fresh, vec![0, 1, 2, 3]);
        let again = load_or_format(&roots, 4).unwrap();
        assert!(again.fresh.is_empty());
        assert_eq!(again.deployment_id, first.deployment_id);
        // swapped drives are refused
        let swapped = vec![roots[1].clone(), roots[0].clone(), roots[2].clone(), roots[3].clone()];
        let err = load_or_format(&swapped, 4).unwrap_err().to_string();
        assert!(err.contains("wrong position"), "{err}");
        // a drive of another deployment is refused
        let other = tempfile::tempdir().unwrap();
        let other_roots: Vec<PathBuf> = (0..4).map(|i| other.path().join(format!("d{i}"))).collect();
        load_or_format(&other_roots, 4).unwrap();
        let mixed = vec![roots[0].clone(), roots[1].clone(), roots[2].clone(), other_roots[3].clone()];
        let err = load_or_format(&mixed, 4).unwrap_err().to_string();
        assert!(err.contains("another deployment"), "{err}");
        // a wiped drive is re-formatted in place
        std::fs::remove_dir_all(&roots[2]).unwrap();
        let healed = load_or_format(&roots, 4).unwrap();
        assert_eq!(healed.fresh, vec![2]);
        assert_eq!(healed.formats[2].drive_id, first.formats[2].drive_id);
        // a corrupted format file is refused with a message
        let path = format_path(&roots[1]);
        let text = std::fs::read_to_string(&path).unwrap().replace(&first.deployment_id, "x");
        std::fs::write(&path, text).unwrap();
        assert!(load_or_format(&roots, 4).unwrap_err().to_string().contains("checksum"));
    }
}
