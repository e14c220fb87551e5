//! Hashing: the one implementation of the digests S3 knows — MD5 for ETags (single-part and
//! multipart), CRC32, CRC32C and SHA-256 additional checksums (one-shot, incremental and S3's
//! composite "checksum of checksums") — encoded the way S3 returns them (additional checksums:
//! base64 of the big-endian digest). ETag *parsing* and comparison rules live in `verify`.

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
    /// Raw digest bytes (big-endian for CRCs, as S3 encodes them).
    pub fn digest(&self) -> Vec<u8> {
        match self {
            Hasher::Crc32(h) => h.clone().finalize().to_be_bytes().to_vec(),
            Hasher::Crc32c(c) => c.to_be_bytes().to_vec(),
            Hasher::Sha256(h) => sha2::Digest::finalize(h.clone()).to_vec(),
        }
    }
    /// Base64 of the big-endian digest (S3's `x-amz-checksum-*` form).
    pub fn base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.digest())
    }
}

/// One-shot additional checksum of `data`, base64 as S3 shows it.
pub fn checksum_b64(algo: ChecksumAlgo, data: &[u8]) -> String {
    let mut h = Hasher::new(algo);
    h.update(data);
    h.base64()
}

/// S3's composite ("checksum of checksums") value of a multipart object: base64 of the checksum
/// of the concatenated raw part checksums, with `-N`. None if a part value is not base64.
pub fn composite_checksum(algo: ChecksumAlgo, part_checksums_b64: &[String]) -> Option<String> {
    let mut h = Hasher::new(algo);
    for p in part_checksums_b64 {
        h.update(&base64::engine::general_purpose::STANDARD.decode(p).ok()?);
    }
    Some(format!("{}-{}", h.base64(), part_checksums_b64.len()))
}

/// Hex MD5 of `data` (the ETag of a single-part object).
pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// S3's multipart ETag of parts with these MD5 digests: hex MD5 of the concatenated binary part
/// MD5s, then `-N`.
pub fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    let mut h = Md5::new();
    for d in part_md5s {
        h.update(d);
    }
    format!("{}-{}", hex::encode(h.finalize()), part_md5s.len())
}

/// [`multipart_etag`] of parts given by their ETags (hex MD5s, quotes allowed); None if one is
/// not a hex MD5.
pub fn multipart_etag_hex<S: AsRef<str>>(part_etags: &[S]) -> Option<String> {
    let digests: Option<Vec<[u8; 16]>> = part_etags
        .iter()
        .map(|e| hex::decode(e.as_ref().trim_matches('"')).ok()?.try_into().ok())
        .collect();
    Some(multipart_etag(&digests?))
}

/// The S3 ETag of `data` uploaded with `part_size` (single-part when `part_size` is None).
pub fn etag_of(data: &[u8], part_size: Option<u64>) -> String {
    match part_size {
        None => md5_hex(data),
        Some(p) => {
            let p = p.max(1) as usize;
            let mut parts: Vec<[u8; 16]> = data.chunks(p).map(|c| Md5::digest(c).into()).collect();
            if parts.is_empty() {
                parts.push(Md5::digest(b"").into());
            }
            multipart_etag(&parts)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_etag_known_answers() {
        // MD5("") and MD5("abc"), the classic vectors.
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(etag_of(b"abc", None), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn multipart_etag_known_answer() {
        // Values computed independently with Python's hashlib:
        // md5(md5(b"abc").digest() + md5(b"def").digest()).hexdigest() + "-2"
        assert_eq!(etag_of(b"abcdef", Some(3)), "4c8e93283780e078db9e0c6b9b3f8043-2");
        let (a, b) = (md5_hex(b"abc"), md5_hex(b"def"));
        assert_eq!(
            multipart_etag_hex(&[format!("\"{a}\""), b]).as_deref(),
            Some("4c8e93283780e078db9e0c6b9b3f8043-2")
        );
        assert_eq!(multipart_etag_hex(&["not-hex"]), None);
        // bytes(range(256)) * 40 (10,240 bytes) in 4,096-byte parts: 3 parts.
        let data: Vec<u8> = (0..40).flat_map(|_| 0u8..=255).collect();
        assert_eq!(etag_of(&data, Some(4096)), "b9a4d6e74e6be4117e4726aa450242ec-3");
    }

    #[test]
    fn checksum_vectors() {
        // CRC32("123456789") = 0xCBF43926, CRC32C = 0xE3069283 (check values of both polynomials).
        let b64 = |v: u32| base64::engine::general_purpose::STANDARD.encode(v.to_be_bytes());
        assert_eq!(checksum_b64(ChecksumAlgo::Crc32, b"123456789"), b64(0xCBF43926));
        assert_eq!(checksum_b64(ChecksumAlgo::Crc32c, b"123456789"), b64(0xE3069283));
        assert_eq!(checksum_b64(ChecksumAlgo::Crc32, b"hello"), "NhCmhg==");
        assert_eq!(checksum_b64(ChecksumAlgo::Crc32c, b"hello"), "mnG7TA==");
        assert_eq!(
            checksum_b64(ChecksumAlgo::Sha256, b"abc"),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
        assert_eq!(
            checksum_b64(ChecksumAlgo::Sha256, b""),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        // Incremental equals one-shot.
        let mut h = Hasher::new(ChecksumAlgo::Crc32c);
        h.update(b"1234");
        h.update(b"56789");
        assert_eq!(h.base64(), b64(0xE3069283));
        assert_eq!(h.algo(), ChecksumAlgo::Crc32c);
        // Composite of two parts: the checksum of the concatenated raw part checksums.
        let parts = [
            checksum_b64(ChecksumAlgo::Crc32, b"ab"),
            checksum_b64(ChecksumAlgo::Crc32, b"c"),
        ];
        let mut raw = Vec::new();
        for p in &parts {
            raw.extend(base64::engine::general_purpose::STANDARD.decode(p).unwrap());
        }
        assert_eq!(
            composite_checksum(ChecksumAlgo::Crc32, &parts).unwrap(),
            format!("{}-2", checksum_b64(ChecksumAlgo::Crc32, &raw))
        );
    }
}
