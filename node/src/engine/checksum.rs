//! Incremental computation of the checksums S3 knows (MD5 for ETags, CRC32, CRC32C, SHA-256),
//! encoded the way S3 returns them (additional checksums: base64 of the big-endian digest).

use base64::Engine as _;
use md5::{Digest as _, Md5};
use sha2::Sha256;

use super::store::ChecksumAlgo;

/// One running additional checksum.
#[derive(Clone)]
pub enum Hasher {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Sha256(Sha256),
}

impl Hasher {
    pub fn new(algo: ChecksumAlgo) -> Hasher {
        match algo {
            ChecksumAlgo::Crc32 => Hasher::Crc32(crc32fast::Hasher::new()),
            ChecksumAlgo::Crc32c => Hasher::Crc32c(0),
            ChecksumAlgo::Sha256 => Hasher::Sha256(Sha256::new()),
        }
    }
    pub fn algo(&self) -> ChecksumAlgo {
        match self {
            Hasher::Crc32(_) => ChecksumAlgo::Crc32,
            Hasher::Crc32c(_) => ChecksumAlgo::Crc32c,
            Hasher::Sha256(_) => ChecksumAlgo::Sha256,
        }
    }
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Crc32(h) => h.update(data),
            Hasher::Crc32c(c) => *c = crc32c::crc32c_append(*c, data),
            Hasher::Sha256(h) => sha2::Digest::update(h, data),
        }
    }
    /// Base64 of the big-endian digest (S3's `x-amz-checksum-*` form).
    pub fn finish_b64(self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        match self {
            Hasher::Crc32(h) => b64.encode(h.finalize().to_be_bytes()),
            Hasher::Crc32c(c) => b64.encode(c.to_be_bytes()),
            Hasher::Sha256(h) => b64.encode(sha2::Digest::finalize(h)),
        }
    }
}

/// One-shot additional checksum of `data`.
pub fn checksum_b64(algo: ChecksumAlgo, data: &[u8]) -> String {
    let mut h = Hasher::new(algo);
    h.update(data);
    h.finish_b64()
}

/// Hex MD5 of `data` (the ETag of a single-part object).
pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// S3's multipart ETag: hex MD5 of the concatenated binary part MD5s, then `-N`.
/// Part ETags are hex MD5s (quotes allowed); returns None if one is not.
pub fn multipart_etag<S: AsRef<str>>(part_etags: &[S]) -> Option<String> {
    let mut h = Md5::new();
    for e in part_etags {
        let raw = hex::decode(e.as_ref().trim_matches('"')).ok()?;
        if raw.len() != 16 {
            return None;
        }
        h.update(&raw);
    }
    Some(format!("{}-{}", hex::encode(h.finalize()), part_etags.len()))
}

/// The `-N` part count of a multipart ETag.
pub fn etag_parts(etag: &str) -> Option<u32> {
    let e = etag.trim_matches('"');
    let (_, n) = e.rsplit_once('-')?;
    n.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(checksum_b64(ChecksumAlgo::Crc32, b"hello"), "NhCmhg==");
        assert_eq!(checksum_b64(ChecksumAlgo::Crc32c, b"hello"), "mnG7TA==");
        assert_eq!(
            checksum_b64(ChecksumAlgo::Sha256, b""),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        let a = md5_hex(b"a");
        let b = md5_hex(b"b");
        let m = multipart_etag(&[a.as_str(), b.as_str()]).unwrap();
        assert!(m.ends_with("-2"));
        assert_eq!(etag_parts(&m), Some(2));
        assert_eq!(etag_parts(&a), None);
    }
}
