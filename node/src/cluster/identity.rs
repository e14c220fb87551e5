//! A node's identity in its data directory: the node id (random, never reused) and, once known,
//! the id of the cluster the directory belongs to.
//!
//! The node id is drawn from 1..2^53 so it survives JSON clients that read numbers as doubles.
//! A wiped data directory therefore rejoins as a *new* node, which is what Raft needs: reusing an
//! id with an empty log can split a cluster into two quorums.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::Rng;

const NODE_ID_FILE: &str = "node-id";
const CLUSTER_ID_FILE: &str = "cluster-id";
/// File the bootstrapping node writes the root token to (mode 0600).
pub const ROOT_TOKEN_FILE: &str = "root-token";

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct IdentityError(pub String);

/// Reads the node id, creating one on first start.
pub fn load_or_create_node_id(dir: &Path) -> Result<u64, IdentityError> {
    let path = dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse::<u64>().ok().filter(|id| *id > 0).ok_or_else(|| {
            IdentityError(format!(
                "{} is damaged (expected a positive number, found `{}`); restore it from a backup, or move the data directory away to start this machine as a new node",
                path.display(),
                text.trim()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = rand::thread_rng().gen_range(1..(1u64 << 53));
            write_atomic(&path, id.to_string().as_bytes(), false).map_err(|e| IdentityError(format!("cannot write {}: {e}", path.display())))?;
            Ok(id)
        }
        Err(e) => Err(IdentityError(format!("cannot read {}: {e}", path.display()))),
    }
}

/// The cluster id recorded in the data dir, if any.
pub fn cluster_id(dir: &Path) -> Result<Option<String>, IdentityError> {
    let path = dir.join(CLUSTER_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok(Some(t.trim().to_string()).filter(|s| !s.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(IdentityError(format!("cannot read {}: {e}", path.display()))),
    }
}

pub fn record_cluster_id(dir: &Path, id: &str) -> std::io::Result<()> {
    write_atomic(&dir.join(CLUSTER_ID_FILE), id.as_bytes(), false)
}

/// Writes a file via a temporary name and rename, fsyncing it; `secret` files get mode 0600.
pub fn write_atomic(path: &Path, data: &[u8], secret: bool) -> std::io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp: PathBuf = path.with_file_name(tmp_name);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(parent)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_node_id(dir.path()).unwrap();
        let b = load_or_create_node_id(dir.path()).unwrap();
        assert_eq!(a, b);
        assert!(a > 0 && a < (1 << 53));
    }

    #[test]
    fn damaged_node_id_is_an_error_not_a_new_id() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(NODE_ID_FILE), "garbage").unwrap();
        let e = load_or_create_node_id(dir.path()).unwrap_err().to_string();
        assert!(e.contains("damaged"), "{e}");
    }

    #[test]
    fn secret_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        write_atomic(&p, b"x", true).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(cluster_id(dir.path()).unwrap(), None);
        record_cluster_id(dir.path(), "c1").unwrap();
        assert_eq!(cluster_id(dir.path()).unwrap().as_deref(), Some("c1"));
    }
}
