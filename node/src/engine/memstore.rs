//! An in-memory [`ObjectStore`] with S3 semantics, for tests of the transfer layer: MD5 ETags,
//! multipart ETags, tags, additional checksums, server-side copies between stores of one
//! [`MemServer`], request counting, and fault injection (failing keys, broken GET bodies,
//! transient errors, tampering).
//!
//! It is not a production store: everything lives in one mutex.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;

use super::store::*;
use super::transfer::RequestCounts;
use super::verify::{self, checksum_of};

#[derive(Clone, Debug)]
struct MemObject {
    data: Bytes,
    etag: String,
    meta: ObjectMeta,
    tags: Vec<(String, String)>,
    checksum: Option<(ChecksumAlgo, String)>,
    modified_ms: i64,
}

/// A staged part: bytes, ETag, checksum.
type MemPart = (Bytes, String, Option<(ChecksumAlgo, String)>);

#[derive(Clone, Debug)]
struct MemUpload {
    bucket: String,
    key: String,
    opts: WriteOptions,
    parts: BTreeMap<u32, MemPart>,
}

/// Faults to inject, shared by every store of a server.
#[derive(Debug, Default)]
pub struct Faults {
    /// Writes (put, create multipart, copy) to these full keys fail with AccessDenied.
    pub deny_write: HashSet<String>,
    /// Deletes of these full keys fail.
    pub deny_delete: HashSet<String>,
    /// The next N GET bodies break half-way with a Transient error.
    pub break_gets: u32,
    /// The next N upload_part / put calls fail with a Transient error before storing.
    pub transient_writes: u32,
    /// Completed objects with these full keys get one byte flipped (silent corruption).
    pub corrupt_on_write: HashSet<String>,
    /// Report no additional checksums (a store without them).
    pub no_checksums: bool,
}

#[derive(Debug, Default)]
struct State {
    buckets: HashMap<String, BTreeMap<String, MemObject>>,
    uploads: BTreeMap<String, MemUpload>,
    next_id: u64,
    clock: i64,
    counts: RequestCounts,
}

/// One "endpoint": buckets whose stores can copy server-side between each other.
#[derive(Debug)]
pub struct MemServer {
    name: String,
    state: Mutex<State>,
    pub faults: Mutex<Faults>,
}

impl MemServer {
    pub fn new(name: &str) -> Arc<MemServer> {
        Arc::new(MemServer {
            name: name.into(),
            state: Mutex::new(State::default()),
            faults: Mutex::new(Faults::default()),
        })
    }
    /// A store on `bucket` under `prefix` ("" or ending in '/').
    pub fn store(self: &Arc<Self>, bucket: &str, prefix: &str) -> MemStore {
        self.state.lock().unwrap().buckets.entry(bucket.into()).or_default();
        MemStore {
            server: self.clone(),
            bucket: bucket.into(),
            prefix: prefix.into(),
            s3: true,
            replace_only: false,
        }
    }
    /// A store that behaves like a filesystem location (no server-side copy).
    pub fn fs_store(self: &Arc<Self>, bucket: &str) -> MemStore {
        MemStore {
            s3: false,
            ..self.store(bucket, "")
        }
    }
    /// Requests served so far, and reset.
    pub fn take_counts(&self) -> RequestCounts {
        std::mem::take(&mut self.state.lock().unwrap().counts)
    }
    pub fn counts(&self) -> RequestCounts {
        self.state.lock().unwrap().counts
    }
    pub fn open_uploads(&self) -> usize {
        self.state.lock().unwrap().uploads.len()
    }
}

/// A bucket (and prefix) of a [`MemServer`].
#[derive(Clone, Debug)]
pub struct MemStore {
    server: Arc<MemServer>,
    bucket: String,
    prefix: String,
    s3: bool,
    /// CopyObject always replaces metadata and tags (directive REPLACE), like a store whose
    /// `copy_keeps_metadata()` is false.
    replace_only: bool,
}

fn meta_from(opts: &WriteOptions) -> ObjectMeta {
    ObjectMeta {
        content_type: opts.content_type.clone(),
        cache_control: opts.cache_control.clone(),
        content_disposition: opts.content_disposition.clone(),
        content_encoding: opts.content_encoding.clone(),
        content_language: opts.content_language.clone(),
        expires: opts.expires.clone(),
        user_metadata: opts.user_metadata.clone(),
        sse: opts.sse.clone(),
        info: ObjectInfo {
            storage_class: opts.storage_class.clone().or(Some("STANDARD".into())),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn replaces_metadata(o: &WriteOptions) -> bool {
    o.content_type.is_some()
        || o.cache_control.is_some()
        || o.content_disposition.is_some()
        || o.content_encoding.is_some()
        || o.content_language.is_some()
        || o.expires.is_some()
        || !o.user_metadata.is_empty()
}

impl MemStore {
    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
    fn count(&self, f: impl FnOnce(&mut RequestCounts)) {
        f(&mut self.server.state.lock().unwrap().counts)
    }
    /// This store's CopyObject always uses directive REPLACE.
    pub fn replace_only(mut self) -> MemStore {
        self.replace_only = true;
        self
    }
    /// Puts an object directly (test setup), single-part or in parts of `part_size`.
    pub fn insert(&self, key: &str, data: &[u8], opts: &WriteOptions, part_size: Option<u64>) {
        let etag = verify::etag_of(data, part_size);
        self.store_object(
            key,
            Bytes::copy_from_slice(data),
            etag,
            opts,
            part_size.map(|p| (data.len() as u64).div_ceil(p.max(1)) as u32),
        );
    }
    /// Overwrites an object's bytes without touching its ETag (bit rot / tampering).
    pub fn tamper(&self, key: &str) {
        let mut st = self.server.state.lock().unwrap();
        if let Some(o) = st
            .buckets
            .get_mut(&self.bucket)
            .and_then(|b| b.get_mut(&self.full(key)))
        {
            let mut v = o.data.to_vec();
            if let Some(b) = v.first_mut() {
                *b ^= 0xff;
            }
            o.data = v.into();
        }
    }
    pub fn data(&self, key: &str) -> Option<Bytes> {
        self.server
            .state
            .lock()
            .unwrap()
            .buckets
            .get(&self.bucket)?
            .get(&self.full(key))
            .map(|o| o.data.clone())
    }
    pub fn keys(&self) -> Vec<String> {
        let st = self.server.state.lock().unwrap();
        st.buckets[&self.bucket]
            .keys()
            .filter_map(|k| k.strip_prefix(self.prefix.as_str()).map(str::to_string))
            .collect()
    }
    pub fn tags(&self, key: &str) -> Vec<(String, String)> {
        let st = self.server.state.lock().unwrap();
        st.buckets[&self.bucket]
            .get(&self.full(key))
            .map(|o| o.tags.clone())
            .unwrap_or_default()
    }
    pub fn server(&self) -> &Arc<MemServer> {
        &self.server
    }

    fn store_object(&self, key: &str, data: Bytes, etag: String, opts: &WriteOptions, parts: Option<u32>) -> PutResult {
        let full = self.full(key);
        let checksum = opts.checksum.map(|a| (a, checksum_of(a, &data)));
        let mut st = self.server.state.lock().unwrap();
        st.clock += 1;
        let modified_ms = 1_700_000_000_000 + st.clock;
        let mut meta = meta_from(opts);
        meta.parts_count = parts;
        let obj = MemObject {
            data,
            etag: etag.clone(),
            meta,
            tags: opts.tags.clone(),
            checksum: checksum.clone(),
            modified_ms,
        };
        st.buckets.entry(self.bucket.clone()).or_default().insert(full, obj);
        PutResult {
            etag: Some(etag),
            checksum,
        }
    }

    /// Flips the first byte of what arrives for a key set up to be corrupted in transit.
    fn maybe_corrupt(&self, key: &str, data: Bytes) -> Bytes {
        if self
            .server
            .faults
            .lock()
            .unwrap()
            .corrupt_on_write
            .contains(&self.full(key))
            && !data.is_empty()
        {
            let mut v = data.to_vec();
            v[0] ^= 0xff;
            return v.into();
        }
        data
    }

    fn check_write(&self, key: &str) -> StoreResult<()> {
        let mut f = self.server.faults.lock().unwrap();
        if f.deny_write.contains(&self.full(key)) {
            return Err(StoreError::AccessDenied {
                detail: format!("writes to `{key}` are denied (injected)"),
            });
        }
        if f.transient_writes > 0 {
            f.transient_writes -= 1;
            return Err(StoreError::Transient {
                detail: "injected transient write failure".into(),
            });
        }
        Ok(())
    }

    fn object(&self, bucket: &str, full: &str) -> StoreResult<MemObject> {
        let st = self.server.state.lock().unwrap();
        st.buckets
            .get(bucket)
            .ok_or_else(|| StoreError::NoSuchBucket { bucket: bucket.into() })?
            .get(full)
            .cloned()
            .ok_or_else(|| StoreError::NotFound { key: full.into() })
    }
}

async fn collect(mut body: Body, len: u64) -> StoreResult<Bytes> {
    let mut v = Vec::with_capacity(len as usize);
    while let Some(c) = body.next().await {
        v.extend_from_slice(&c?);
    }
    if v.len() as u64 != len {
        return Err(StoreError::Other {
            detail: format!("body has {} bytes, content-length {len}", v.len()),
        });
    }
    Ok(v.into())
}

#[async_trait::async_trait]
impl ObjectStore for MemStore {
    fn describe(&self) -> String {
        format!("mem://{}/{}/{}", self.server.name, self.bucket, self.prefix)
    }
    fn endpoint_id(&self) -> EndpointId {
        if self.s3 {
            EndpointId::S3 {
                endpoint: format!("mem://{}", self.server.name),
                region: "mem".into(),
            }
        } else {
            EndpointId::Fs
        }
    }
    fn copy_keeps_metadata(&self) -> bool {
        !self.replace_only
    }
    fn copy_source(&self, key: &str) -> Option<CopySource> {
        self.s3.then(|| CopySource {
            bucket: self.bucket.clone(),
            key: self.full(key),
        })
    }

    async fn list(&self, range: &KeyRange, max_keys: usize) -> StoreResult<ListPage> {
        self.count(|c| c.list += 1);
        let st = self.server.state.lock().unwrap();
        let b = st.buckets.get(&self.bucket).ok_or_else(|| StoreError::NoSuchBucket {
            bucket: self.bucket.clone(),
        })?;
        let prefix = self.full(&range.prefix);
        let after = range.start_after.as_ref().map(|s| self.full(s));
        let end = range.end.as_ref().map(|s| self.full(s));
        let mut objects = Vec::new();
        let mut more = false;
        for (k, o) in b.range(prefix.clone()..) {
            if !k.starts_with(&prefix) {
                break;
            }
            if after.as_ref().is_some_and(|a| k <= a) {
                continue;
            }
            if end.as_ref().is_some_and(|e| k > e) {
                break;
            }
            if objects.len() == max_keys.max(1) {
                more = true;
                break;
            }
            objects.push(ObjectInfo {
                key: k[self.prefix.len()..].to_string(),
                size: o.data.len() as u64,
                etag: Some(o.etag.clone()),
                last_modified_ms: Some(o.modified_ms),
                storage_class: o.meta.info.storage_class.clone(),
            });
        }
        let next_start_after = if more {
            objects.last().map(|o| o.key.clone())
        } else {
            None
        };
        Ok(ListPage {
            objects,
            next_start_after,
        })
    }

    async fn head(&self, key: &str) -> StoreResult<ObjectMeta> {
        self.count(|c| c.head += 1);
        let o = self
            .object(&self.bucket, &self.full(key))
            .map_err(|_| StoreError::NotFound { key: key.into() })?;
        let mut m = o.meta.clone();
        m.info = ObjectInfo {
            key: key.into(),
            size: o.data.len() as u64,
            etag: Some(o.etag.clone()),
            last_modified_ms: Some(o.modified_ms),
            storage_class: o.meta.info.storage_class.clone(),
        };
        if !self.server.faults.lock().unwrap().no_checksums {
            if let Some((a, c)) = &o.checksum {
                m.checksums.insert(*a, c.clone());
            }
        }
        Ok(m)
    }

    async fn get_tags(&self, key: &str) -> StoreResult<Vec<(String, String)>> {
        self.count(|c| c.get_tags += 1);
        Ok(self
            .object(&self.bucket, &self.full(key))
            .map_err(|_| StoreError::NotFound { key: key.into() })?
            .tags)
    }

    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> StoreResult<Body> {
        self.count(|c| c.get += 1);
        let o = self
            .object(&self.bucket, &self.full(key))
            .map_err(|_| StoreError::NotFound { key: key.into() })?;
        let data = match range {
            Some((a, b)) => o
                .data
                .slice(a as usize..=(b as usize).min(o.data.len().saturating_sub(1))),
            None => o.data,
        };
        let broken = {
            let mut f = self.server.faults.lock().unwrap();
            let b = f.break_gets > 0;
            if b {
                f.break_gets -= 1;
            }
            b
        };
        let chunk = 16 * 1024;
        let mut chunks: Vec<StoreResult<Bytes>> = (0..data.len())
            .step_by(chunk)
            .map(|i| Ok(data.slice(i..(i + chunk).min(data.len()))))
            .collect();
        if broken {
            chunks.truncate(chunks.len() / 2);
            chunks.push(Err(StoreError::Transient {
                detail: "connection reset mid-body (injected)".into(),
            }));
        }
        Ok(Box::pin(futures::stream::iter(chunks)))
    }

    async fn put(&self, key: &str, body: Body, len: u64, opts: &WriteOptions) -> StoreResult<PutResult> {
        self.count(|c| c.put += 1);
        self.check_write(key)?;
        let data = self.maybe_corrupt(key, collect(body, len).await?);
        if opts.if_none_match && self.object(&self.bucket, &self.full(key)).is_ok() {
            return Err(StoreError::PreconditionFailed { key: key.into() });
        }
        let etag = verify::etag_of(&data, None);
        Ok(self.store_object(key, data, etag, opts, None))
    }

    async fn create_multipart(&self, key: &str, opts: &WriteOptions) -> StoreResult<String> {
        self.count(|c| c.create_multipart += 1);
        self.check_write(key)?;
        let mut st = self.server.state.lock().unwrap();
        st.next_id += 1;
        let id = format!("upload-{}", st.next_id);
        st.uploads.insert(
            id.clone(),
            MemUpload {
                bucket: self.bucket.clone(),
                key: self.full(key),
                opts: opts.clone(),
                parts: BTreeMap::new(),
            },
        );
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
        self.count(|c| c.upload_part += 1);
        self.check_write(key)?;
        let mut data = collect(body, len).await?;
        if part_number == 1 {
            data = self.maybe_corrupt(key, data);
        }
        let etag = verify::etag_of(&data, None);
        let ck = checksum.map(|a| (a, checksum_of(a, &data)));
        let mut st = self.server.state.lock().unwrap();
        let u = st.uploads.get_mut(upload_id).ok_or_else(|| StoreError::NotFound {
            key: format!("upload {upload_id}"),
        })?;
        u.parts.insert(part_number, (data, etag.clone(), ck.clone()));
        Ok(CompletedPart {
            part_number,
            etag,
            checksum: if self.server.faults.lock().unwrap().no_checksums {
                None
            } else {
                ck
            },
        })
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        _opts: &WriteOptions,
    ) -> StoreResult<PutResult> {
        self.count(|c| c.complete_multipart += 1);
        let u = self
            .server
            .state
            .lock()
            .unwrap()
            .uploads
            .remove(upload_id)
            .ok_or_else(|| StoreError::NotFound {
                key: format!("upload {upload_id}"),
            })?;
        let mut data = Vec::new();
        let mut md5s = Vec::new();
        let mut cks = Vec::new();
        for p in parts {
            let (d, e, ck) = u.parts.get(&p.part_number).ok_or_else(|| StoreError::Other {
                detail: format!("part {} was not uploaded", p.part_number),
            })?;
            if *e != p.etag {
                return Err(StoreError::Other {
                    detail: format!("part {} ETag mismatch", p.part_number),
                });
            }
            data.extend_from_slice(d);
            md5s.push(<[u8; 16]>::try_from(hex::decode(e).unwrap()).unwrap());
            if let Some((_, c)) = ck {
                cks.push(c.clone());
            }
        }
        let etag = verify::multipart_etag(&md5s);
        let mut res = self.store_object(
            key,
            data.into(),
            etag,
            &WriteOptions {
                checksum: None,
                ..u.opts.clone()
            },
            Some(parts.len() as u32),
        );
        if let Some(a) = u.opts.checksum {
            if cks.len() == parts.len() && !self.server.faults.lock().unwrap().no_checksums {
                let comp = verify::composite_checksum(a, &cks).unwrap();
                let mut st = self.server.state.lock().unwrap();
                if let Some(o) = st
                    .buckets
                    .get_mut(&self.bucket)
                    .and_then(|b| b.get_mut(&self.full(key)))
                {
                    o.checksum = Some((a, comp.clone()));
                }
                res.checksum = Some((a, comp));
            }
        }
        Ok(res)
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()> {
        self.count(|c| c.abort_multipart += 1);
        self.server
            .state
            .lock()
            .unwrap()
            .uploads
            .remove(upload_id)
            .map(|_| ())
            .ok_or_else(|| StoreError::NotFound {
                key: format!("{key} upload {upload_id}"),
            })
    }

    async fn list_multipart_uploads(&self, prefix: &str) -> StoreResult<Vec<UploadInfo>> {
        self.count(|c| c.list += 1);
        let full = self.full(prefix);
        let st = self.server.state.lock().unwrap();
        Ok(st
            .uploads
            .iter()
            .filter(|(_, u)| u.bucket == self.bucket && u.key.starts_with(&full))
            .map(|(id, u)| UploadInfo {
                key: u.key[self.prefix.len()..].to_string(),
                upload_id: id.clone(),
                initiated_ms: None,
            })
            .collect())
    }

    async fn copy_object(&self, src: &CopySource, key: &str, opts: &WriteOptions) -> StoreResult<PutResult> {
        self.count(|c| c.copy += 1);
        if !self.s3 {
            return Err(StoreError::Other {
                detail: "not an S3 store".into(),
            });
        }
        self.check_write(key)?;
        let o = self.object(&src.bucket, &src.key)?;
        if opts.if_none_match && self.object(&self.bucket, &self.full(key)).is_ok() {
            return Err(StoreError::PreconditionFailed { key: key.into() });
        }
        // MetadataDirective REPLACE when any metadata is given, else COPY; same for tags.
        let mut w = if replaces_metadata(opts) || self.replace_only {
            opts.clone()
        } else {
            WriteOptions {
                content_type: o.meta.content_type.clone(),
                cache_control: o.meta.cache_control.clone(),
                content_disposition: o.meta.content_disposition.clone(),
                content_encoding: o.meta.content_encoding.clone(),
                content_language: o.meta.content_language.clone(),
                expires: o.meta.expires.clone(),
                user_metadata: o.meta.user_metadata.clone(),
                ..opts.clone()
            }
        };
        if opts.tags.is_empty() && !self.replace_only {
            w.tags = o.tags.clone();
        }
        let etag = verify::etag_of(&o.data, None);
        Ok(self.store_object(key, o.data.clone(), etag, &w, None))
    }

    async fn upload_part_copy(
        &self,
        src: &CopySource,
        key: &str,
        upload_id: &str,
        part_number: u32,
        range: (u64, u64),
    ) -> StoreResult<CompletedPart> {
        self.count(|c| c.upload_part_copy += 1);
        self.check_write(key)?;
        let o = self.object(&src.bucket, &src.key)?;
        let data = o.data.slice(range.0 as usize..=range.1 as usize);
        let etag = verify::etag_of(&data, None);
        let mut st = self.server.state.lock().unwrap();
        let u = st.uploads.get_mut(upload_id).ok_or_else(|| StoreError::NotFound {
            key: format!("upload {upload_id}"),
        })?;
        let ck = u.opts.checksum.map(|a| (a, checksum_of(a, &data)));
        u.parts.insert(part_number, (data, etag.clone(), ck.clone()));
        Ok(CompletedPart {
            part_number,
            etag,
            checksum: ck,
        })
    }

    async fn delete_many(&self, keys: &[String]) -> StoreResult<Vec<(String, StoreError)>> {
        self.count(|c| c.delete += 1);
        let deny = self.server.faults.lock().unwrap().deny_delete.clone();
        let mut st = self.server.state.lock().unwrap();
        let b = st.buckets.entry(self.bucket.clone()).or_default();
        let mut failed = Vec::new();
        for k in keys {
            let full = format!("{}{k}", self.prefix);
            if deny.contains(&full) {
                failed.push((
                    k.clone(),
                    StoreError::AccessDenied {
                        detail: format!("delete of `{k}` denied (injected)"),
                    },
                ));
            } else {
                b.remove(&full);
            }
        }
        Ok(failed)
    }

    async fn probe(&self) -> ProbeReport {
        ProbeReport {
            steps: vec![("list".into(), Ok("ok".into()))],
        }
    }
}
