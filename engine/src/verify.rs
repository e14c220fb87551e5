//! Verification of copies: what "the destination holds the same bytes" means per mode, and the
//! rules for reading and comparing ETags and checksums (the hashing itself is `checksum`).
//!
//! Modes ([`Verify`]):
//! - `None`: trust the store's acknowledgement.
//! - `Size`: the destination holds exactly the source's size (streaming: bytes read == bytes the
//!   destination accepted == the listed size; server-side: equal MD5 ETags, else one HEAD).
//! - `Etag`: S3 ETags. A single-part ETag is the MD5 of the content; a multipart ETag is
//!   `hex(MD5(MD5(part 1) ‖ … ‖ MD5(part N)))-N`, so it depends on the part layout. The engine
//!   recomputes, from the bytes it streamed, the ETag the destination must have for *its* part
//!   layout and compares it with what the destination returned; and it checks the bytes it read
//!   against the source's ETag when that ETag is reproducible (a single-part MD5, or a multipart
//!   ETag whose part size the engine could infer — it then copies with that same layout).
//!   ETags of SSE-KMS (and SSE-C) objects are not MD5s: for those, and for stores whose ETags are
//!   not MD5-based, `Etag` falls back to checksum (when the stores report one) and size, and says
//!   so in [`Verified::notes`].
//! - `Checksum`: S3 additional checksums (CRC32C by default, CRC32 or SHA256): the destination is
//!   asked to compute and keep one and the engine compares it with the value it computed while
//!   streaming (and with the source's, when the source reports a whole-object value). A store
//!   that returns no checksum is read back and checksummed by the engine ("computed while
//!   streaming on both sides").
//!
//! A definite mismatch is `StoreError::Mismatch` for that object; the engine then deletes the
//! destination object it just wrote (it is known bad), and reports the mismatch.

use super::store::ChecksumAlgo;

/// How a copy is verified. See the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Verify {
    None,
    #[default]
    Size,
    Etag,
    Checksum,
}

impl std::str::FromStr for Verify {
    type Err = String;
    fn from_str(s: &str) -> Result<Verify, String> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Verify::None),
            "size" => Ok(Verify::Size),
            "etag" => Ok(Verify::Etag),
            "checksum" => Ok(Verify::Checksum),
            other => Err(format!(
                "unknown verification mode `{other}` (none, size, etag, checksum)"
            )),
        }
    }
}

/// What a copy actually verified.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verified {
    pub size: bool,
    /// The destination ETag equals the one recomputed from the bytes sent.
    pub etag: bool,
    /// The bytes read reproduce the source ETag (single-part MD5 or inferred multipart layout).
    pub source_etag: bool,
    pub checksum: Option<(ChecksumAlgo, String)>,
    /// Why a requested check fell back to a weaker one.
    pub notes: Vec<String>,
}

/// A single-part S3 ETag: 32 lowercase or uppercase hex digits.
pub fn is_plain_md5(etag: &str) -> bool {
    etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `hex-N` → `N`, for multipart ETags.
pub fn multipart_parts(etag: &str) -> Option<u32> {
    let (digest, n) = etag.split_once('-')?;
    if !is_plain_md5(digest) {
        return None;
    }
    n.parse().ok().filter(|n| *n > 0)
}

/// Whether two ETags can be compared for content equality: both single-part MD5s, or both
/// multipart with the same number of parts (equal layouts give equal ETags for equal bytes).
pub fn etags_comparable(a: &str, b: &str) -> bool {
    (is_plain_md5(a) && is_plain_md5(b))
        || matches!((multipart_parts(a), multipart_parts(b)), (Some(x), Some(y)) if x == y)
}

/// Normalizes an ETag for comparison (no quotes, lowercase).
pub fn norm_etag(e: &str) -> String {
    e.trim_matches('"').to_ascii_lowercase()
}

const MIB: u64 = 1024 * 1024;

/// Guesses the part size a multipart object of `size` bytes in `parts` parts was uploaded with:
/// `hint` when consistent, else the smallest whole number of MiB that gives `parts` parts, else
/// the exact `ceil(size / parts)`. None when nothing is consistent. A guess can be wrong (any
/// size in a range gives the same part count); callers treat a non-matching guess as "not
/// reproducible", never as a mismatch.
pub fn infer_part_size(size: u64, parts: u32, hint: Option<u64>) -> Option<u64> {
    let parts = parts as u64;
    if parts == 0 || size == 0 {
        return None;
    }
    let fits = |p: u64| p > 0 && size.div_ceil(p) == parts;
    if let Some(h) = hint.filter(|h| fits(*h)) {
        return Some(h);
    }
    let exact = size.div_ceil(parts);
    let mib = exact.div_ceil(MIB) * MIB;
    [mib, exact].into_iter().find(|p| fits(*p))
}

/// Compares a checksum a store reported with ours. Stores may report the composite form
/// (`…-N`) for multipart objects; `composite` is our composite value for the layout we wrote.
pub fn checksum_matches(reported: &str, whole: &str, composite: Option<&str>) -> bool {
    reported == whole || composite.is_some_and(|c| c == reported)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_parsing() {
        assert_eq!(multipart_parts("4c8e93283780e078db9e0c6b9b3f8043-2"), Some(2));
        assert!(!is_plain_md5("4c8e93283780e078db9e0c6b9b3f8043-2"));
        assert!(is_plain_md5("900150983CD24FB0D6963F7D28E17F72"));
        assert_eq!(multipart_parts("1700000000-12"), None);
    }

    #[test]
    fn comparability() {
        let p = "900150983cd24fb0d6963f7d28e17f72";
        assert!(etags_comparable(p, p));
        assert!(!etags_comparable(p, &format!("{p}-2")));
        assert!(etags_comparable(&format!("{p}-2"), &format!("{p}-2")));
        assert!(!etags_comparable(&format!("{p}-2"), &format!("{p}-3")));
        assert!(!etags_comparable("1700000000-12", p));
    }

    #[test]
    fn part_size_inference() {
        let mib = 1024 * 1024;
        assert_eq!(infer_part_size(20 * mib, 3, None), Some(7 * mib));
        assert_eq!(infer_part_size(20 * mib, 3, Some(8 * mib)), Some(8 * mib));
        assert_eq!(infer_part_size(10, 3, None), Some(4));
        assert_eq!(infer_part_size(0, 3, None), None);
    }
}
