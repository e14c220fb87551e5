//! [`FsStore`]: objects as files under a root directory.
//!
//! # Key mapping (reversible)
//!
//! A key is split on `/` into segments; each segment becomes one path component (or a chain of
//! them when long), escaped so that anything a POSIX filesystem cannot hold round-trips exactly:
//!
//! | in the key | on disk |
//! |---|---|
//! | `%` | `%25` |
//! | NUL | `%00` |
//! | an empty segment (`a//b`, a leading `/`, a trailing `/` "folder" marker) | `%-` |
//! | a segment that is exactly `.` / `..` | `%2E` / `%2E%2E` |
//! | a segment longer than 200 bytes once escaped | chunks of ≤ 200 bytes: `c1%+/c2%+/…/cn` (a directory whose name ends in `%+` continues the same segment) |
//! | everything else (unicode, spaces, `+`, `?`, `#`, …) | itself |
//!
//! So `a//b/` is stored at `a/%-/b/%-`, `/x` at `%-/x`, `100%` at `100%25`. Escapes are always
//! `%` + two *uppercase* hex digits, so a name holding `%` followed by anything else can never be
//! produced by escaping: those names are reserved for the store's own files:
//! - `<name>%meta`: the sidecar of object `<name>` (JSON: ETag, size and mtime it describes,
//!   content headers, user metadata, tags, storage class, checksums);
//! - `%obj`: inside directory `d`, the object whose key is `d` itself (S3 allows both `a` and
//!   `a/b`; a file cannot also be a directory, so when `a/b` arrives, `a` moves to `a/%obj`);
//! - `%tmp/` (at the root): temporary files, renamed into place (same filesystem, atomic);
//! - `%uploads/<upload_id>/` (at the root): staged multipart uploads (`upload.json`,
//!   `part-NNNNN` + `part-NNNNN.md5`).
//!
//! Files placed by hand are listed under their own names when those are valid escapes (no `%`
//! other than `%25`/`%00`); other names are skipped with a warning.
//!
//! # Listing
//! A best-first walk (a min-heap keyed by the smallest key a file or directory can hold) yields
//! keys in ascending byte order of the *key* (S3 order), not of the escaped path, pruning
//! directories outside the range's prefix / before `start_after` and stopping after `end`.
//! Listing stats each listed file and reads its small sidecar (never the data): ETag and storage
//! class come from the sidecar when its recorded size and mtime still match the file (a file
//! changed by hand has no ETag in listings; `head` then computes its MD5).
//!
//! # Writes
//! Data goes to `%tmp/`, is fsynced, then renamed into place (`If-None-Match: *` uses `link`,
//! which fails if the target exists); the sidecar is written the same way afterwards. ETag = hex
//! MD5 of the content; multipart ETag = S3 style (MD5 of the part MD5s + `-N`). SSE is not
//! applicable to a directory and is not recorded. Server-side copy is not available.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::checksum::{self, Hasher};
use super::store::*;
use super::verify;

const EMPTY_SEG: &str = "%-";
const CONT: &str = "%+";
const SELF_OBJ: &str = "%obj";
const META_SUFFIX: &str = "%meta";
const TMP_DIR: &str = "%tmp";
const UPLOADS_DIR: &str = "%uploads";
const MAX_CHUNK: usize = 200;
const READ_CHUNK: usize = 256 * 1024;

fn escape_segment(seg: &str) -> String {
    if seg.is_empty() {
        return EMPTY_SEG.to_string();
    }
    if seg == "." {
        return "%2E".into();
    }
    if seg == ".." {
        return "%2E%2E".into();
    }
    let mut out = String::with_capacity(seg.len());
    for ch in seg.chars() {
        match ch {
            '%' => out.push_str("%25"),
            '\0' => out.push_str("%00"),
            c => out.push(c),
        }
    }
    out
}

/// Splits an escaped segment into chunks of at most MAX_CHUNK bytes, never inside an escape or
/// a character.
fn chunk_segment(esc: &str) -> Vec<&str> {
    if esc.len() <= MAX_CHUNK {
        return vec![esc];
    }
    let mut out = Vec::new();
    let b = esc.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        let unit = if b[i] == b'%' {
            3
        } else {
            esc[i..].chars().next().map(char::len_utf8).unwrap_or(1)
        };
        if i + unit - start > MAX_CHUNK {
            out.push(&esc[start..i]);
            start = i;
        }
        i += unit;
    }
    out.push(&esc[start..]);
    out
}

/// The relative path of `key` in a fs location (the *natural* path: when that path is a
/// directory, the object lives at `<path>/%obj`). Empty keys are invalid.
pub fn escape_key(key: &str) -> StoreResult<PathBuf> {
    if key.is_empty() {
        return Err(StoreError::InvalidKey {
            key: key.into(),
            detail: "empty key".into(),
        });
    }
    let mut p = PathBuf::new();
    for seg in key.split('/') {
        let esc = escape_segment(seg);
        let chunks = chunk_segment(&esc);
        let n = chunks.len();
        for (i, c) in chunks.into_iter().enumerate() {
            if i + 1 < n {
                p.push(format!("{c}{CONT}"));
            } else {
                p.push(c);
            }
        }
    }
    Ok(p)
}

/// Decodes one escaped name (or chunk) without canonical checks.
fn unescape_piece(name: &str) -> Option<String> {
    if name == EMPTY_SEG {
        return Some(String::new());
    }
    let b = name.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = b.get(i + 1..i + 3)?;
            if !h.iter().all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c)) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The key of a relative path made by [`escape_key`] (a trailing `%obj` component is accepted).
/// None when the path is not a canonical escape of any key.
pub fn unescape_key(rel: &Path) -> Option<String> {
    let mut comps: Vec<&str> = Vec::new();
    for c in rel.components() {
        match c {
            std::path::Component::Normal(s) => comps.push(s.to_str()?),
            _ => return None,
        }
    }
    if comps.last() == Some(&SELF_OBJ) {
        comps.pop();
    }
    let mut segs: Vec<String> = Vec::new();
    let mut cur = String::new();
    for c in &comps {
        if let Some(chunk) = c.strip_suffix(CONT) {
            cur.push_str(chunk);
        } else {
            cur.push_str(c);
            segs.push(unescape_piece(&std::mem::take(&mut cur))?);
        }
    }
    if !cur.is_empty() || segs.is_empty() {
        return None;
    }
    let key = segs.join("/");
    let natural: PathBuf = comps.iter().collect();
    (escape_key(&key).ok()? == natural).then_some(key)
}

/// Per-object sidecar (`<name>%meta`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
struct Sidecar {
    v: u32,
    size: u64,
    mtime_ns: i64,
    etag: Option<String>,
    content_type: Option<String>,
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
    expires: Option<String>,
    user_metadata: BTreeMap<String, String>,
    tags: Vec<(String, String)>,
    storage_class: Option<String>,
    /// "CRC32" | "CRC32C" | "SHA256" -> base64
    checksums: BTreeMap<String, String>,
}

fn algo_name(a: ChecksumAlgo) -> &'static str {
    match a {
        ChecksumAlgo::Crc32 => "CRC32",
        ChecksumAlgo::Crc32c => "CRC32C",
        ChecksumAlgo::Sha256 => "SHA256",
    }
}
fn algo_parse(s: &str) -> Option<ChecksumAlgo> {
    match s {
        "CRC32" => Some(ChecksumAlgo::Crc32),
        "CRC32C" => Some(ChecksumAlgo::Crc32c),
        "SHA256" => Some(ChecksumAlgo::Sha256),
        _ => None,
    }
}

impl Sidecar {
    fn from_opts(o: &WriteOptions) -> Sidecar {
        Sidecar {
            v: 1,
            content_type: o.content_type.clone(),
            cache_control: o.cache_control.clone(),
            content_disposition: o.content_disposition.clone(),
            content_encoding: o.content_encoding.clone(),
            content_language: o.content_language.clone(),
            expires: o.expires.clone(),
            user_metadata: o.user_metadata.clone(),
            tags: o.tags.clone(),
            storage_class: o.storage_class.clone(),
            ..Default::default()
        }
    }
}

fn mtime_ns(m: &std::fs::Metadata) -> i64 {
    m.mtime().saturating_mul(1_000_000_000).saturating_add(m.mtime_nsec())
}

fn sidecar_path(data: &Path) -> PathBuf {
    let mut s = data.as_os_str().to_owned();
    s.push(META_SUFFIX);
    PathBuf::from(s)
}

/// Reads the sidecar of `data` if it still describes the file's current size and mtime.
fn read_sidecar(data: &Path, m: &std::fs::Metadata) -> Option<Sidecar> {
    let raw = std::fs::read(sidecar_path(data)).ok()?;
    let sc: Sidecar = serde_json::from_slice(&raw).ok()?;
    (sc.size == m.len() && sc.mtime_ns == mtime_ns(m)).then_some(sc)
}

fn io_err(key: &str, what: &str, e: std::io::Error) -> StoreError {
    match e.kind() {
        ErrorKind::NotFound => StoreError::NotFound { key: key.to_string() },
        ErrorKind::PermissionDenied => StoreError::AccessDenied {
            detail: format!("{what}: {e}"),
        },
        _ => StoreError::Other {
            detail: format!("{what}: {e}"),
        },
    }
}

fn rand_hex() -> String {
    format!("{:016x}{:08x}", rand::random::<u64>(), rand::random::<u32>())
}

/// A directory of objects. See the module docs for the on-disk layout.
#[derive(Clone, Debug)]
pub struct FsStore {
    root: PathBuf,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Item {
    /// The smallest key this item can hold (files: their key).
    sort: String,
    /// 0 = file, 1 = dir
    kind: u8,
    path: PathBuf,
    /// dirs: the prefix of every key inside (except the dir's own `%obj`)
    child_prefix: String,
    /// dirs: the key of `<dir>/%obj`, if such an object could exist
    self_key: Option<String>,
}

impl FsStore {
    pub fn new(spec: &FsLocationSpec) -> FsStore {
        FsStore {
            root: spec.root.clone(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn natural(&self, key: &str) -> StoreResult<PathBuf> {
        Ok(self.root.join(escape_key(key)?))
    }

    /// The data file of an existing object (blocking).
    fn data_path(&self, key: &str) -> StoreResult<(PathBuf, std::fs::Metadata)> {
        let nat = self.natural(key)?;
        let m = std::fs::metadata(&nat).map_err(|e| io_err(key, "stat", e))?;
        if m.is_dir() {
            let p = nat.join(SELF_OBJ);
            let m = std::fs::metadata(&p).map_err(|e| io_err(key, "stat", e))?;
            return Ok((p, m));
        }
        Ok((nat, m))
    }

    fn tmp_file(&self) -> StoreResult<PathBuf> {
        let d = self.root.join(TMP_DIR);
        std::fs::create_dir_all(&d).map_err(|e| io_err("", &format!("create {}", d.display()), e))?;
        Ok(d.join(rand_hex()))
    }

    /// Makes every ancestor of `nat` a directory (moving an object in the way to `<dir>/%obj`)
    /// and returns where the object's data goes.
    fn prepare_target(&self, key: &str, nat: &Path) -> StoreResult<PathBuf> {
        let rel = nat.strip_prefix(&self.root).expect("under root");
        let mut cur = self.root.clone();
        let comps: Vec<_> = rel.components().collect();
        for c in &comps[..comps.len() - 1] {
            cur.push(c);
            match std::fs::symlink_metadata(&cur) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() && cur.is_dir() => {}
                Ok(_) => {
                    // An object sits where a directory must go: move it to <dir>/%obj.
                    let tmp = self.tmp_file()?;
                    std::fs::rename(&cur, &tmp).map_err(|e| io_err(key, "move object aside", e))?;
                    let sc_old = sidecar_path(&cur);
                    std::fs::create_dir(&cur).map_err(|e| io_err(key, "mkdir", e))?;
                    let obj = cur.join(SELF_OBJ);
                    std::fs::rename(&tmp, &obj).map_err(|e| io_err(key, "move object into dir", e))?;
                    if sc_old.exists() {
                        let _ = std::fs::rename(&sc_old, sidecar_path(&obj));
                    }
                }
                Err(e) if e.kind() == ErrorKind::NotFound => match std::fs::create_dir(&cur) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io_err(key, &format!("mkdir {}", cur.display()), e)),
                },
                Err(e) => return Err(io_err(key, "stat", e)),
            }
        }
        if nat.is_dir() {
            Ok(nat.join(SELF_OBJ))
        } else {
            Ok(nat.to_path_buf())
        }
    }

    /// Moves a finished temp file into place and writes its sidecar (blocking).
    fn install(&self, key: &str, tmp: &Path, mut sc: Sidecar, if_none_match: bool) -> StoreResult<()> {
        let nat = self.natural(key)?;
        let res = (|| {
            let target = self.prepare_target(key, &nat)?;
            if if_none_match {
                match std::fs::hard_link(tmp, &target) {
                    Ok(()) => {
                        let _ = std::fs::remove_file(tmp);
                    }
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                        return Err(StoreError::PreconditionFailed { key: key.to_string() })
                    }
                    Err(e) => return Err(io_err(key, "link into place", e)),
                }
            } else {
                std::fs::rename(tmp, &target).map_err(|e| io_err(key, "rename into place", e))?;
            }
            let m = std::fs::metadata(&target).map_err(|e| io_err(key, "stat", e))?;
            sc.size = m.len();
            sc.mtime_ns = mtime_ns(&m);
            let stmp = self.tmp_file()?;
            std::fs::write(&stmp, serde_json::to_vec(&sc).expect("json"))
                .map_err(|e| io_err(key, "write sidecar", e))?;
            std::fs::rename(&stmp, sidecar_path(&target)).map_err(|e| io_err(key, "rename sidecar", e))?;
            Ok(())
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(tmp);
        }
        res
    }

    fn expand(&self, dir: &Item, range: &KeyRange, heap: &mut BinaryHeap<Reverse<Item>>) -> StoreResult<()> {
        let rd = match std::fs::read_dir(&dir.path) {
            Ok(rd) => rd,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("", &format!("read dir {}", dir.path.display()), e)),
        };
        let at_root = dir.path == self.root;
        let sa = range.start_after.as_deref();
        for ent in rd {
            let ent = ent.map_err(|e| io_err("", &format!("read dir {}", dir.path.display()), e))?;
            let name_os = ent.file_name();
            let Some(name) = name_os.to_str() else {
                tracing::warn!(path = %ent.path().display(), "fs location: skipping a non-UTF-8 name");
                continue;
            };
            if (at_root && (name == TMP_DIR || name == UPLOADS_DIR)) || name.ends_with(META_SUFFIX) {
                continue;
            }
            let path = ent.path();
            if name == SELF_OBJ {
                if let Some(k) = &dir.self_key {
                    heap.push(Reverse(Item {
                        sort: k.clone(),
                        kind: 0,
                        path,
                        child_prefix: String::new(),
                        self_key: None,
                    }));
                }
                continue;
            }
            let mut is_dir = ent.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if ent.file_type().map(|t| t.is_symlink()).unwrap_or(false) {
                is_dir = path.is_dir();
            }
            let (piece_name, cont) = match name.strip_suffix(CONT) {
                Some(p) if is_dir => (p, true),
                _ => (name, false),
            };
            let Some(piece) = unescape_piece(piece_name) else {
                tracing::warn!(path = %path.display(), "fs location: skipping a name that is not a valid key escape");
                continue;
            };
            let lower = format!("{}{}", dir.child_prefix, piece);
            if is_dir {
                let (child_prefix, self_key) = if cont {
                    (lower.clone(), None)
                } else {
                    (format!("{lower}/"), Some(lower.clone()))
                };
                // prefix pruning
                let p = range.prefix.as_str();
                let compatible = child_prefix.starts_with(p) || p.starts_with(child_prefix.as_str());
                let self_ok = self_key.as_deref().map(|k| k.starts_with(p)).unwrap_or(false);
                if !compatible && !self_ok {
                    continue;
                }
                // start_after pruning: every key inside starts with `lower`
                if let Some(sa) = sa {
                    if lower.as_str() < sa && !sa.starts_with(lower.as_str()) {
                        continue;
                    }
                }
                heap.push(Reverse(Item {
                    sort: lower,
                    kind: 1,
                    path,
                    child_prefix,
                    self_key,
                }));
            } else {
                if !lower.starts_with(range.prefix.as_str()) {
                    continue;
                }
                if let Some(sa) = sa {
                    if lower.as_str() <= sa {
                        continue;
                    }
                }
                heap.push(Reverse(Item {
                    sort: lower,
                    kind: 0,
                    path,
                    child_prefix: String::new(),
                    self_key: None,
                }));
            }
        }
        Ok(())
    }

    fn list_blocking(&self, range: &KeyRange, max_keys: usize) -> StoreResult<ListPage> {
        let mut page = ListPage::default();
        if max_keys == 0 {
            return Ok(page);
        }
        let mut heap = BinaryHeap::new();
        let root = Item {
            sort: String::new(),
            kind: 1,
            path: self.root.clone(),
            child_prefix: String::new(),
            self_key: None,
        };
        self.expand(&root, range, &mut heap)?;
        while let Some(Reverse(it)) = heap.pop() {
            if let Some(end) = &range.end {
                // Byte order: a folder past `end` holds only keys past it. In path order (a range
                // cut from a store that lists folder by folder) only a key decides.
                let past = if range.path_order {
                    it.kind != 1 && range.past_end(&it.sort)
                } else {
                    it.sort.as_str() > end.as_str()
                };
                if past {
                    return Ok(page);
                }
            }
            if it.sort.as_str() > range.prefix.as_str() && !it.sort.starts_with(range.prefix.as_str()) {
                return Ok(page);
            }
            if it.kind == 1 {
                self.expand(&it, range, &mut heap)?;
                continue;
            }
            let key = it.sort;
            if !key.starts_with(range.prefix.as_str())
                || range.start_after.as_deref().is_some_and(|sa| key.as_str() <= sa)
            {
                continue;
            }
            // canonical check: the file must be where escape_key puts the key
            let rel = it.path.strip_prefix(&self.root).unwrap_or(&it.path);
            if unescape_key(rel).as_deref() != Some(key.as_str()) {
                tracing::warn!(path = %it.path.display(), "fs location: skipping a name that is not a canonical key escape");
                continue;
            }
            let m = match std::fs::metadata(&it.path) {
                Ok(m) => m,
                Err(e) if e.kind() == ErrorKind::NotFound => continue, // deleted meanwhile
                Err(e) => return Err(io_err(&key, "stat", e)),
            };
            let sc = read_sidecar(&it.path, &m);
            page.objects.push(ObjectInfo {
                key,
                size: m.len(),
                etag: sc.as_ref().and_then(|s| s.etag.clone()),
                last_modified_ms: Some(mtime_ns(&m) / 1_000_000),
                storage_class: sc.and_then(|s| s.storage_class),
            });
            if page.objects.len() >= max_keys {
                if !heap.is_empty() {
                    page.next_start_after = page.objects.last().map(|o| o.key.clone());
                }
                return Ok(page);
            }
        }
        Ok(page)
    }

    fn head_blocking(&self, key: &str) -> StoreResult<ObjectMeta> {
        let (p, m) = self.data_path(key)?;
        if !m.is_file() {
            return Err(StoreError::NotFound { key: key.into() });
        }
        let sc = match read_sidecar(&p, &m) {
            Some(sc) => sc,
            None => {
                // no (valid) sidecar: a file placed by hand; compute its MD5
                let mut f = std::fs::File::open(&p).map_err(|e| io_err(key, "open", e))?;
                let mut h = Md5::new();
                let mut buf = vec![0u8; READ_CHUNK];
                loop {
                    let n = f.read(&mut buf).map_err(|e| io_err(key, "read", e))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                Sidecar {
                    etag: Some(hex::encode(h.finalize())),
                    ..Default::default()
                }
            }
        };
        let parts_count = sc.etag.as_deref().and_then(verify::multipart_parts);
        Ok(ObjectMeta {
            info: ObjectInfo {
                key: key.into(),
                size: m.len(),
                etag: sc.etag,
                last_modified_ms: Some(mtime_ns(&m) / 1_000_000),
                storage_class: sc.storage_class,
            },
            content_type: sc.content_type,
            cache_control: sc.cache_control,
            content_disposition: sc.content_disposition,
            content_encoding: sc.content_encoding,
            content_language: sc.content_language,
            expires: sc.expires,
            user_metadata: sc.user_metadata,
            sse: None,
            checksums: sc
                .checksums
                .iter()
                .filter_map(|(k, v)| Some((algo_parse(k)?, v.clone())))
                .collect(),
            parts_count,
        })
    }

    fn delete_blocking(&self, key: &str) -> StoreResult<()> {
        let (p, _) = match self.data_path(key) {
            Ok(x) => x,
            Err(StoreError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(key, "delete", e)),
        }
        let _ = std::fs::remove_file(sidecar_path(&p));
        // prune empty directories up to the root
        let mut d = p.parent().map(Path::to_path_buf);
        while let Some(dir) = d {
            if dir == self.root || !dir.starts_with(&self.root) {
                break;
            }
            if std::fs::remove_dir(&dir).is_err() {
                break;
            }
            d = dir.parent().map(Path::to_path_buf);
        }
        Ok(())
    }

    /// Streams `body` into a new temp file; returns (path, md5 hex, checksum).
    async fn spool(
        &self,
        key: &str,
        mut body: Body,
        len: u64,
        algo: Option<ChecksumAlgo>,
    ) -> StoreResult<(PathBuf, String, Option<(ChecksumAlgo, String)>)> {
        let tmp = {
            let s = self.clone();
            tokio::task::spawn_blocking(move || s.tmp_file())
                .await
                .map_err(join_err)??
        };
        let res = async {
            let mut f = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| io_err(key, "create temp file", e))?;
            let mut md5 = Md5::new();
            let mut h = algo.map(Hasher::new);
            let mut n: u64 = 0;
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                n += chunk.len() as u64;
                if n > len {
                    return Err(StoreError::Mismatch {
                        key: key.into(),
                        detail: format!("body longer than the announced {len} bytes"),
                    });
                }
                md5.update(&chunk);
                if let Some(h) = h.as_mut() {
                    h.update(&chunk);
                }
                f.write_all(&chunk).await.map_err(|e| io_err(key, "write", e))?;
            }
            if n != len {
                return Err(StoreError::Mismatch {
                    key: key.into(),
                    detail: format!("body ended after {n} of {len} bytes"),
                });
            }
            f.sync_all().await.map_err(|e| io_err(key, "fsync", e))?;
            Ok((hex::encode(md5.finalize()), h.map(|h| (h.algo(), h.base64()))))
        }
        .await;
        match res {
            Ok((md5, ck)) => Ok((tmp, md5, ck)),
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e)
            }
        }
    }

    fn upload_dir(&self, upload_id: &str) -> StoreResult<PathBuf> {
        if upload_id.is_empty() || !upload_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::NotFound {
                key: format!("upload {upload_id}"),
            });
        }
        Ok(self.root.join(UPLOADS_DIR).join(upload_id))
    }
}

#[derive(Serialize, Deserialize)]
struct UploadFile {
    key: String,
    initiated_ms: i64,
    checksum: Option<String>,
    sidecar: Sidecar,
}

fn join_err(e: tokio::task::JoinError) -> StoreError {
    StoreError::Other {
        detail: format!("fs worker failed: {e}"),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> StoreResult<T> + Send + 'static) -> StoreResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(join_err)?
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[async_trait::async_trait]
impl ObjectStore for FsStore {
    fn describe(&self) -> String {
        format!("fs:{}", self.root.display())
    }

    fn endpoint_id(&self) -> EndpointId {
        EndpointId::Fs
    }

    async fn list(&self, range: &KeyRange, max_keys: usize) -> StoreResult<ListPage> {
        let s = self.clone();
        let r = range.clone();
        blocking(move || s.list_blocking(&r, max_keys)).await
    }

    async fn head(&self, key: &str) -> StoreResult<ObjectMeta> {
        let s = self.clone();
        let k = key.to_string();
        blocking(move || s.head_blocking(&k)).await
    }

    async fn get_tags(&self, key: &str) -> StoreResult<Vec<(String, String)>> {
        let s = self.clone();
        let k = key.to_string();
        blocking(move || {
            let (p, m) = s.data_path(&k)?;
            Ok(read_sidecar(&p, &m).map(|sc| sc.tags).unwrap_or_default())
        })
        .await
    }

    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> StoreResult<Body> {
        let s = self.clone();
        let k = key.to_string();
        let (p, m) = blocking(move || s.data_path(&k)).await?;
        let size = m.len();
        let (start, remaining) = match range {
            None => (0, size),
            Some((a, b)) => {
                if a > b || (a >= size && size > 0) || (size == 0 && a > 0) {
                    return Err(StoreError::Other {
                        detail: format!("invalid range {a}-{b} for `{key}` of {size} bytes"),
                    });
                }
                (a, (b.min(size.saturating_sub(1)) + 1).saturating_sub(a))
            }
        };
        let mut f = tokio::fs::File::open(&p).await.map_err(|e| io_err(key, "open", e))?;
        if start > 0 {
            f.seek(std::io::SeekFrom::Start(start))
                .await
                .map_err(|e| io_err(key, "seek", e))?;
        }
        let key = key.to_string();
        let stream = futures::stream::try_unfold((f, remaining, key), |(mut f, remaining, key)| async move {
            if remaining == 0 {
                return Ok(None);
            }
            let want = remaining.min(READ_CHUNK as u64) as usize;
            let mut buf = BytesMut::zeroed(want);
            let n = f.read(&mut buf).await.map_err(|e| io_err(&key, "read", e))?;
            if n == 0 {
                return Err(StoreError::Transient {
                    detail: format!("`{key}` shrank while being read"),
                });
            }
            buf.truncate(n);
            Ok(Some((Bytes::from(buf), (f, remaining - n as u64, key))))
        });
        Ok(Box::pin(stream))
    }

    async fn put(&self, key: &str, body: Body, len: u64, opts: &WriteOptions) -> StoreResult<PutResult> {
        escape_key(key)?;
        let (tmp, md5, ck) = self.spool(key, body, len, opts.checksum).await?;
        let mut sc = Sidecar::from_opts(opts);
        sc.etag = Some(md5.clone());
        if let Some((a, v)) = &ck {
            sc.checksums.insert(algo_name(*a).into(), v.clone());
        }
        let s = self.clone();
        let k = key.to_string();
        let inm = opts.if_none_match;
        blocking(move || s.install(&k, &tmp, sc, inm)).await?;
        Ok(PutResult {
            etag: Some(md5),
            checksum: ck,
        })
    }

    async fn create_multipart(&self, key: &str, opts: &WriteOptions) -> StoreResult<String> {
        escape_key(key)?;
        let id = rand_hex();
        let dir = self.upload_dir(&id)?;
        let uf = UploadFile {
            key: key.to_string(),
            initiated_ms: now_ms(),
            checksum: opts.checksum.map(|a| algo_name(a).to_string()),
            sidecar: Sidecar::from_opts(opts),
        };
        let k = key.to_string();
        blocking(move || {
            std::fs::create_dir_all(&dir).map_err(|e| io_err(&k, "create upload dir", e))?;
            std::fs::write(dir.join("upload.json"), serde_json::to_vec(&uf).expect("json"))
                .map_err(|e| io_err(&k, "write upload", e))?;
            Ok(())
        })
        .await?;
        Ok(id)
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Body,
        len: u64,
        checksum: Option<ChecksumAlgo>,
    ) -> StoreResult<CompletedPart> {
        if !(1..=10_000).contains(&part_number) {
            return Err(StoreError::Other {
                detail: format!("part number {part_number} is outside 1..=10000"),
            });
        }
        let dir = self.upload_dir(upload_id)?;
        if !tokio::fs::try_exists(dir.join("upload.json")).await.unwrap_or(false) {
            return Err(StoreError::NotFound {
                key: format!("{key} (upload {upload_id})"),
            });
        }
        let (tmp, md5, ck) = self.spool(key, body, len, checksum).await?;
        let k = key.to_string();
        let md5c = md5.clone();
        blocking(move || {
            let part = dir.join(format!("part-{part_number:05}"));
            std::fs::write(dir.join(format!("part-{part_number:05}.md5")), &md5c)
                .map_err(|e| io_err(&k, "write part etag", e))?;
            std::fs::rename(&tmp, &part).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                io_err(&k, "rename part", e)
            })
        })
        .await?;
        Ok(CompletedPart {
            part_number,
            etag: md5,
            checksum: ck,
        })
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        opts: &WriteOptions,
    ) -> StoreResult<PutResult> {
        let dir = self.upload_dir(upload_id)?;
        let s = self.clone();
        let k = key.to_string();
        let parts = parts.to_vec();
        let inm = opts.if_none_match;
        blocking(move || {
            let raw = std::fs::read(dir.join("upload.json")).map_err(|_| StoreError::NotFound {
                key: format!("{k} (upload)"),
            })?;
            let uf: UploadFile = serde_json::from_slice(&raw).map_err(|e| StoreError::Other {
                detail: format!("corrupt upload record: {e}"),
            })?;
            if uf.key != k {
                return Err(StoreError::Other {
                    detail: format!("upload belongs to `{}`, not `{k}`", uf.key),
                });
            }
            if parts.is_empty() {
                return Err(StoreError::Other {
                    detail: "complete with no parts".into(),
                });
            }
            let mut md5s = Vec::new();
            let mut last = 0;
            for p in &parts {
                if p.part_number <= last {
                    return Err(StoreError::Other {
                        detail: "parts must be in ascending order".into(),
                    });
                }
                last = p.part_number;
                let e = std::fs::read_to_string(dir.join(format!("part-{:05}.md5", p.part_number))).map_err(|_| {
                    StoreError::Other {
                        detail: format!("part {} was not uploaded", p.part_number),
                    }
                })?;
                if e.trim() != p.etag.trim_matches('"') {
                    return Err(StoreError::Mismatch {
                        key: k.clone(),
                        detail: format!("part {} ETag {} != uploaded {}", p.part_number, p.etag, e.trim()),
                    });
                }
                md5s.push(e.trim().to_string());
            }
            let tmp = s.tmp_file()?;
            let mut out = std::fs::File::create(&tmp).map_err(|e| io_err(&k, "create", e))?;
            let mut h = uf.checksum.as_deref().and_then(algo_parse).map(Hasher::new);
            let mut buf = vec![0u8; READ_CHUNK];
            for p in &parts {
                let mut f = std::fs::File::open(dir.join(format!("part-{:05}", p.part_number)))
                    .map_err(|e| io_err(&k, "open part", e))?;
                loop {
                    let n = f.read(&mut buf).map_err(|e| io_err(&k, "read part", e))?;
                    if n == 0 {
                        break;
                    }
                    if let Some(h) = h.as_mut() {
                        h.update(&buf[..n]);
                    }
                    out.write_all(&buf[..n]).map_err(|e| io_err(&k, "write", e))?;
                }
            }
            out.sync_all().map_err(|e| io_err(&k, "fsync", e))?;
            drop(out);
            let etag = checksum::multipart_etag_hex(&md5s).expect("hex md5s");
            let mut sc = uf.sidecar.clone();
            sc.etag = Some(etag.clone());
            let ck = h.map(|h| (h.algo(), h.base64()));
            if let Some((a, v)) = &ck {
                sc.checksums.insert(algo_name(*a).into(), v.clone());
            }
            s.install(&k, &tmp, sc, inm)?;
            let _ = std::fs::remove_dir_all(&dir);
            Ok(PutResult {
                etag: Some(etag),
                checksum: ck,
            })
        })
        .await
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()> {
        let dir = self.upload_dir(upload_id)?;
        let k = key.to_string();
        let id = upload_id.to_string();
        blocking(move || match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(StoreError::NotFound {
                key: format!("{k} (upload {id})"),
            }),
            Err(e) => Err(io_err(&k, "abort upload", e)),
        })
        .await
    }

    async fn list_multipart_uploads(&self, prefix: &str) -> StoreResult<Vec<UploadInfo>> {
        let d = self.root.join(UPLOADS_DIR);
        let prefix = prefix.to_string();
        blocking(move || {
            let mut out = Vec::new();
            let rd = match std::fs::read_dir(&d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(io_err("", "list uploads", e)),
            };
            for ent in rd.flatten() {
                let Ok(raw) = std::fs::read(ent.path().join("upload.json")) else {
                    continue;
                };
                let Ok(uf) = serde_json::from_slice::<UploadFile>(&raw) else {
                    continue;
                };
                if uf.key.starts_with(&prefix) {
                    out.push(UploadInfo {
                        key: uf.key,
                        upload_id: ent.file_name().to_string_lossy().into_owned(),
                        initiated_ms: Some(uf.initiated_ms),
                    });
                }
            }
            out.sort_by(|a, b| (&a.key, a.initiated_ms).cmp(&(&b.key, b.initiated_ms)));
            Ok(out)
        })
        .await
    }

    async fn copy_object(&self, _src: &CopySource, _key: &str, _opts: &WriteOptions) -> StoreResult<PutResult> {
        Err(StoreError::Other {
            detail: "server-side copy needs two S3 locations on the same endpoint".into(),
        })
    }

    async fn upload_part_copy(
        &self,
        _src: &CopySource,
        _key: &str,
        _upload_id: &str,
        _part_number: u32,
        _range: (u64, u64),
    ) -> StoreResult<CompletedPart> {
        Err(StoreError::Other {
            detail: "server-side copy needs two S3 locations on the same endpoint".into(),
        })
    }

    async fn delete_many(&self, keys: &[String]) -> StoreResult<Vec<(String, StoreError)>> {
        let s = self.clone();
        let keys = keys.to_vec();
        blocking(move || {
            let mut failed = Vec::new();
            for k in keys {
                if let Err(e) = s.delete_blocking(&k) {
                    failed.push((k, e));
                }
            }
            Ok(failed)
        })
        .await
    }

    async fn probe(&self) -> ProbeReport {
        let mut steps = Vec::new();
        let root = self.root.clone();
        let r = match std::fs::metadata(&root) {
            Ok(m) if m.is_dir() => Ok(format!("{} is a directory", root.display())),
            Ok(_) => Err(StoreError::Other {
                detail: format!("{} is not a directory", root.display()),
            }),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(StoreError::Other {
                detail: format!(
                    "{} does not exist on this node (create it, on every node)",
                    root.display()
                ),
            }),
            Err(e) => Err(io_err("", &format!("stat {}", root.display()), e)),
        };
        let fatal = r.is_err();
        steps.push(("root directory".to_string(), r));
        if fatal {
            return ProbeReport { steps };
        }
        let wording = ProbeWording {
            empty: "empty",
            shown_prefix: "",
            read_only_note: "",
        };
        probe_data_steps(self, &mut steps, &wording).await;
        ProbeReport { steps }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<String> {
        vec![
            "plain".into(),
            "dir/file.txt".into(),
            "unicodé/日本語/ファイル".into(),
            "with space".into(),
            "a+b".into(),
            "100%".into(),
            "%25".into(),
            "q?x".into(),
            "h#x".into(),
            "a//b".into(),
            "/leading".into(),
            "trailing/".into(),
            "/".into(),
            "//".into(),
            ".".into(),
            "..".into(),
            "./..".into(),
            "a/./b/../c".into(),
            "...".into(),
            "nul\0byte".into(),
            "x%meta".into(),
            "%obj".into(),
            "%tmp/x".into(),
            "%uploads".into(),
            "ends%+".into(),
            "%-".into(),
            "k".repeat(1024),
            format!("{}/x", "é".repeat(300)),
            format!("{}%", "y".repeat(199)),
        ]
    }

    #[test]
    fn escape_round_trips() {
        for k in corpus() {
            let p = escape_key(&k).unwrap();
            for c in p.components() {
                let s = c.as_os_str().to_str().unwrap();
                assert!(s.len() <= 255 - META_SUFFIX.len(), "component too long for {k:?}");
                assert!(!s.contains('\0'));
                assert!(s != "." && s != ".." && !s.is_empty(), "bad component {s:?} for {k:?}");
                assert!(
                    !s.ends_with(META_SUFFIX) && s != SELF_OBJ && s != TMP_DIR && s != UPLOADS_DIR,
                    "reserved name {s:?} for {k:?}"
                );
            }
            assert_eq!(
                unescape_key(&p).as_deref(),
                Some(k.as_str()),
                "round trip of {k:?} via {p:?}"
            );
        }
        assert!(escape_key("").is_err());
        assert_eq!(escape_key("a//b/").unwrap(), PathBuf::from("a/%-/b/%-"));
        assert_eq!(escape_key("100%").unwrap(), PathBuf::from("100%25"));
        assert_eq!(unescape_key(Path::new("100%2")), None);
        assert_eq!(unescape_key(Path::new("a%2Eb")), None, "non-canonical");
        assert_eq!(unescape_key(Path::new("a/%obj")).as_deref(), Some("a"));
    }

    fn body(b: &'static [u8]) -> Body {
        Box::pin(futures::stream::iter([Ok(Bytes::from_static(b))]))
    }

    async fn read_all(mut b: Body) -> Vec<u8> {
        let mut v = Vec::new();
        while let Some(c) = b.next().await {
            v.extend_from_slice(&c.unwrap());
        }
        v
    }

    #[tokio::test]
    async fn corpus_put_list_head_get_delete() {
        let dir = tempfile::tempdir().unwrap();
        let st = FsStore::new(&FsLocationSpec {
            root: dir.path().to_path_buf(),
        });
        let mut keys = corpus();
        // S3 allows both `a` and `a/b`
        keys.extend(["dir".to_string(), "dir/file.txt/deeper".into(), "zero".into()]);
        for k in &keys {
            let data: &'static [u8] = if k == "zero" {
                b""
            } else {
                Box::leak(k.clone().into_bytes().into_boxed_slice())
            };
            st.put(k, body(data), data.len() as u64, &WriteOptions::default())
                .await
                .unwrap();
        }
        let mut want = keys.clone();
        want.sort();
        want.dedup();
        let mut got = Vec::new();
        let mut range = KeyRange::default();
        loop {
            let p = st.list(&range, 3).await.unwrap();
            got.extend(p.objects.iter().map(|o| o.key.clone()));
            match p.next_start_after {
                Some(s) => range.start_after = Some(s),
                None => break,
            }
        }
        assert_eq!(got, want);
        for k in &keys {
            let m = st.head(k).await.unwrap();
            let expect: Vec<u8> = if k == "zero" { vec![] } else { k.clone().into_bytes() };
            assert_eq!(m.info.size, expect.len() as u64, "{k:?}");
            assert_eq!(m.info.etag.as_deref(), Some(checksum::md5_hex(&expect).as_str()));
            assert_eq!(read_all(st.get(k, None).await.unwrap()).await, expect, "{k:?}");
        }
        // ranges
        let p = st
            .list(
                &KeyRange {
                    prefix: "dir".into(),
                    start_after: Some("dir".into()),
                    end: Some("dir/file.txt/deeper".into()),
                    path_order: false,
                },
                100,
            )
            .await
            .unwrap();
        let ks: Vec<_> = p.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(ks, vec!["dir/file.txt", "dir/file.txt/deeper"]);
        let failed = st.delete_many(&keys).await.unwrap();
        assert!(failed.is_empty());
        assert!(st.list(&KeyRange::default(), 100).await.unwrap().objects.is_empty());
        assert!(matches!(st.head("plain").await, Err(StoreError::NotFound { .. })));
    }

    #[tokio::test]
    async fn metadata_multipart_and_conditional() {
        let dir = tempfile::tempdir().unwrap();
        let st = FsStore::new(&FsLocationSpec {
            root: dir.path().to_path_buf(),
        });
        let mut o = WriteOptions {
            content_type: Some("text/plain".into()),
            storage_class: Some("STANDARD_IA".into()),
            checksum: Some(ChecksumAlgo::Crc32c),
            ..Default::default()
        };
        o.user_metadata.insert("a".into(), "b".into());
        o.tags.push(("t".into(), "v w".into()));
        let r = st.put("k", body(b"hello"), 5, &o).await.unwrap();
        assert_eq!(r.checksum, Some((ChecksumAlgo::Crc32c, "mnG7TA==".into())));
        let m = st.head("k").await.unwrap();
        assert_eq!(m.content_type.as_deref(), Some("text/plain"));
        assert_eq!(m.user_metadata.get("a").map(String::as_str), Some("b"));
        assert_eq!(m.info.storage_class.as_deref(), Some("STANDARD_IA"));
        assert_eq!(
            st.get_tags("k").await.unwrap(),
            vec![("t".to_string(), "v w".to_string())]
        );
        assert_eq!(read_all(st.get("k", Some((1, 3))).await.unwrap()).await, b"ell");
        let ino = WriteOptions {
            if_none_match: true,
            ..Default::default()
        };
        assert!(matches!(
            st.put("k", body(b"x"), 1, &ino).await,
            Err(StoreError::PreconditionFailed { .. })
        ));
        assert!(matches!(
            st.put("short", body(b"x"), 2, &ino).await,
            Err(StoreError::Mismatch { .. })
        ));

        let id = st.create_multipart("mp/obj", &o).await.unwrap();
        let p1 = st
            .upload_part("mp/obj", &id, 1, body(b"hello "), 6, None)
            .await
            .unwrap();
        let p2 = st.upload_part("mp/obj", &id, 2, body(b"world"), 5, None).await.unwrap();
        let ups = st.list_multipart_uploads("mp/").await.unwrap();
        assert_eq!(ups.len(), 1);
        assert_eq!(ups[0].upload_id, id);
        let r = st
            .complete_multipart("mp/obj", &id, &[p1.clone(), p2.clone()], &WriteOptions::default())
            .await
            .unwrap();
        assert_eq!(r.etag, checksum::multipart_etag_hex(&[p1.etag, p2.etag]));
        let m = st.head("mp/obj").await.unwrap();
        assert_eq!(m.parts_count, Some(2));
        assert_eq!(m.content_type.as_deref(), Some("text/plain"));
        assert_eq!(read_all(st.get("mp/obj", None).await.unwrap()).await, b"hello world");
        assert!(st.list_multipart_uploads("").await.unwrap().is_empty());
        let id2 = st.create_multipart("mp/x", &o).await.unwrap();
        st.abort_multipart("mp/x", &id2).await.unwrap();
        assert!(st.list_multipart_uploads("").await.unwrap().is_empty());
        let keys: Vec<_> = st
            .list(&KeyRange::default(), 10)
            .await
            .unwrap()
            .objects
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, vec!["k", "mp/obj"]);
        let rep = st.probe().await;
        assert!(rep.ok(), "{rep:?}");
    }
}
