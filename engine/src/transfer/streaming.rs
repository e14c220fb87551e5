//! Streaming copies: the object's bytes pass through the node.
//!
//! In the data flow: [`copy`] HEADs the source (metadata, size, ETag, checksums) and reads its
//! tags, then
//! - below `multipart_threshold`: one GET whose body — hashed in order, throttled by the
//!   bandwidth limit, watched for cancellation ([`instrument`]) — is the body of one PUT; a
//!   failed source body makes the PUT fail with the GET's (retryable) error, and the pair is
//!   retried;
//! - at or above it: one ranged GET per part, buffered (at most `parts_in_flight` parts per
//!   object: the memory bound), each uploaded with UploadPart through the multipart driver.
//!
//! The digests computed on the way (MD5, the chosen checksum, per part and whole) then verify
//! the copy: the byte count against the source's size, the source's ETag or checksum against
//! what was read, the destination's against what was sent (read back when it reports none). A
//! destination that fails is deleted.

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures::stream::StreamExt;
use md5::{Digest, Md5};

use super::multipart::{part_ranges, run_multipart, PartDone};
use super::{
    cancelled, etag_is_md5, streaming_part_size, with_retry, write_options, CopyCtx, CopyMode, CopyOptions, CopyResult,
    RequestCounts, Verified, Verify,
};
use crate::checksum::{self, Hasher};
use crate::store::{Body, ChecksumAlgo, ObjectMeta, PutResult, StoreError, StoreResult, WriteOptions};
use crate::verify;

/// Digests of a byte stream, computed in stream order.
struct Hashes {
    n: u64,
    md5: Option<Md5>,
    checksum: Option<Hasher>,
    /// (part size, current part's MD5, bytes in it, finished part MD5s): the multipart ETag of
    /// the stream for a given layout (to check a multipart source's ETag on a single PUT).
    layout: Option<(u64, Md5, u64, Vec<[u8; 16]>)>,
    /// The error the source stream failed with, if it did.
    src_err: Option<StoreError>,
}

impl Hashes {
    fn new(md5: bool, checksum: Option<ChecksumAlgo>, layout: Option<u64>) -> Hashes {
        Hashes {
            n: 0,
            md5: md5.then(Md5::new),
            checksum: checksum.map(Hasher::new),
            layout: layout.map(|p| (p, Md5::new(), 0, Vec::new())),
            src_err: None,
        }
    }
    fn update(&mut self, mut data: &[u8]) {
        self.n += data.len() as u64;
        if let Some(h) = &mut self.md5 {
            h.update(data);
        }
        if let Some(h) = &mut self.checksum {
            h.update(data);
        }
        if let Some((p, cur, filled, done)) = &mut self.layout {
            while !data.is_empty() {
                let take = ((*p - *filled) as usize).min(data.len());
                cur.update(&data[..take]);
                *filled += take as u64;
                data = &data[take..];
                if *filled == *p {
                    done.push(std::mem::take(cur).finalize().into());
                    *filled = 0;
                }
            }
        }
    }
    fn layout_etag(&self) -> Option<String> {
        let (_, cur, filled, done) = self.layout.as_ref()?;
        let mut done = done.clone();
        if *filled > 0 {
            done.push(cur.clone().finalize().into());
        }
        Some(checksum::multipart_etag(&done))
    }
}

/// Wraps a body: hashes it in order, applies the bandwidth limit and cancellation, and remembers
/// a source failure (so a failed PUT reports the GET's retryable error, and is retried).
fn instrument(body: Body, hashes: Arc<Mutex<Hashes>>, opts: &CopyOptions) -> Body {
    let bw = opts.bandwidth.clone();
    let cancel = opts.cancel.clone();
    let in_flight = opts.in_flight.clone();
    Box::pin(body.then(move |item| {
        let (hashes, bw, cancel, in_flight) = (hashes.clone(), bw.clone(), cancel.clone(), in_flight.clone());
        async move {
            if cancel.is_cancelled() {
                return Err(cancelled());
            }
            match item {
                Ok(chunk) => {
                    if let Some(b) = &bw {
                        b.take(chunk.len() as u64).await;
                    }
                    hashes.lock().unwrap().update(&chunk);
                    if let Some(f) = &in_flight {
                        f.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(chunk)
                }
                Err(e) => {
                    hashes.lock().unwrap().src_err = Some(e.clone());
                    Err(e)
                }
            }
        }
    }))
}

/// A body of one chunk already in memory.
pub fn once_body(data: Bytes) -> Body {
    Box::pin(futures::stream::once(futures::future::ready(Ok(data))))
}

/// Streams `ctx.src_key` to `ctx.dst_key` (one PUT, or a multipart upload from the threshold).
pub(super) async fn copy(ctx: &CopyCtx<'_>) -> StoreResult<CopyResult> {
    let meta = ctx.head_src().await?;
    let tags = ctx.src_tags().await?;
    let wopts = write_options(&meta, tags, ctx.opts);
    let size = meta.info.size;
    if size > 0 && size >= ctx.opts.multipart_threshold {
        multipart(ctx, &meta, &wopts).await
    } else {
        single(ctx, &meta, &wopts).await
    }
}

/// What the source's ETag says about the bytes, for `Verify::Etag`.
enum SourceEtag {
    /// A plain MD5 of the content.
    Md5(String),
    /// A multipart ETag and the part size inferred for it.
    Multipart(String, u64),
    /// Not reproducible, and why.
    Unknown(String),
}

fn source_etag(meta: &ObjectMeta, opts: &CopyOptions) -> SourceEtag {
    let Some(e) = meta.info.etag.as_deref().map(verify::norm_etag) else {
        return SourceEtag::Unknown("the source reports no ETag".into());
    };
    if !etag_is_md5(meta.sse.as_ref()) {
        return SourceEtag::Unknown("the source is SSE-KMS encrypted: its ETag is not an MD5".into());
    }
    if verify::is_plain_md5(&e) {
        return SourceEtag::Md5(e);
    }
    if let Some(n) = verify::multipart_parts(&e) {
        if let Some(p) = verify::infer_part_size(meta.info.size, n, opts.part_size) {
            return SourceEtag::Multipart(e, p);
        }
    }
    SourceEtag::Unknown(format!("the source ETag `{e}` is not MD5-based"))
}

/// One GET piped into one PUT.
async fn single(ctx: &CopyCtx<'_>, meta: &ObjectMeta, wopts: &WriteOptions) -> StoreResult<CopyResult> {
    let CopyCtx {
        src,
        src_key,
        dst,
        dst_key,
        opts,
        tally,
    } = *ctx;
    let size = meta.info.size;
    let want_etag = opts.verify == Verify::Etag;
    let want_ck = opts.verify == Verify::Checksum;
    let src_etag = source_etag(meta, opts);
    let layout = match (&src_etag, want_etag) {
        (SourceEtag::Multipart(_, p), true) => Some(*p),
        _ => None,
    };
    let hashes = Arc::new(Mutex::new(Hashes::new(
        want_etag,
        want_ck.then_some(opts.checksum_algo),
        layout,
    )));
    // The bytes an attempt streamed count as in flight (`opts.in_flight`) until the copy ends.
    let take_back = |h: &Hashes| {
        if let Some(f) = &opts.in_flight {
            f.fetch_sub(h.n, std::sync::atomic::Ordering::Relaxed);
        }
    };
    let put = with_retry(opts, "stream object", || {
        let hashes = hashes.clone();
        async move {
            {
                let mut h = hashes.lock().unwrap();
                take_back(&h);
                *h = Hashes::new(want_etag, want_ck.then_some(opts.checksum_algo), layout);
            }
            tally.add(|c| c.get += 1);
            let body = src.get(src_key, None).await?;
            let body = instrument(body, hashes.clone(), opts);
            tally.add(|c| c.put += 1);
            match dst.put(dst_key, body, size, wopts).await {
                Ok(p) => Ok(p),
                Err(e) => Err(hashes.lock().unwrap().src_err.take().unwrap_or(e)),
            }
        }
    })
    .await;
    let h = std::mem::replace(&mut *hashes.lock().unwrap(), Hashes::new(false, None, None));
    take_back(&h);
    let put = put?;
    let mut res = streamed_result(size, h.n, None, &put);
    if opts.verify == Verify::None {
        return Ok(res);
    }
    check_streamed_size(ctx, size, h.n).await?;
    res.verified.size = true;
    if want_etag {
        let md5 = hex::encode(h.md5.clone().expect("md5 requested").finalize());
        check_source_etag(ctx, &src_etag, &md5, h.layout_etag().as_deref(), &mut res.verified).await?;
        check_dest_etag(ctx, put.etag.as_deref(), &md5, &mut res.verified).await?;
    }
    if want_ck {
        let whole = h.checksum.as_ref().expect("checksum requested").base64();
        let sent = SentChecksums {
            whole: &whole,
            composite: None,
            parts_checked: false,
        };
        check_checksums(ctx, meta, &sent, &put, &mut res).await?;
    }
    Ok(res)
}

/// `Verify::Etag`: the bytes read against the source's ETag — `md5` is their MD5,
/// `layout_etag` their multipart ETag for the source's inferred part size.
async fn check_source_etag(
    ctx: &CopyCtx<'_>,
    src_etag: &SourceEtag,
    md5: &str,
    layout_etag: Option<&str>,
    v: &mut Verified,
) -> StoreResult<()> {
    match src_etag {
        SourceEtag::Md5(e) => {
            if e != md5 {
                return Err(ctx
                    .reject(format!(
                        "the bytes read have MD5 {md5}, the source ETag is {e} (changed or corrupted during the copy)"
                    ))
                    .await);
            }
            v.source_etag = true;
        }
        SourceEtag::Multipart(e, p) => {
            if layout_etag == Some(e.as_str()) {
                v.source_etag = true;
            } else {
                v.notes.push(format!(
                    "source ETag {e} not reproduced with {p}-byte parts (its part size is unknown): not compared"
                ));
            }
        }
        SourceEtag::Unknown(why) => v.notes.push(format!("{why}: source ETag not compared")),
    }
    Ok(())
}

/// `Verify::Etag`: the destination's ETag against the one `expected` from the bytes sent.
async fn check_dest_etag(
    ctx: &CopyCtx<'_>,
    dst_etag: Option<&str>,
    expected: &str,
    v: &mut Verified,
) -> StoreResult<()> {
    let opts = ctx.opts;
    let d = dst_etag.map(verify::norm_etag);
    let comparable = etag_is_md5(opts.sse.as_ref())
        && d.as_deref()
            .is_some_and(|d| verify::is_plain_md5(d) || verify::multipart_parts(d).is_some());
    match d {
        Some(d) if comparable => {
            if d != expected {
                return Err(ctx
                    .reject(format!("destination ETag {d}, expected {expected} from the bytes sent"))
                    .await);
            }
            v.etag = true;
        }
        _ => v.notes.push(if etag_is_md5(opts.sse.as_ref()) {
            "the destination ETag is not MD5-based: verified by size".into()
        } else {
            "SSE-KMS ETags are not MD5s: destination verified by size".into()
        }),
    }
    Ok(())
}

/// The checksums computed of the bytes a streamed copy sent.
#[derive(Clone, Copy)]
struct SentChecksums<'a> {
    /// Of the whole object.
    whole: &'a str,
    /// Multipart: the composite checksum of the parts (`…-N`).
    composite: Option<&'a str>,
    /// Multipart: every part's checksum was confirmed by the destination as it was uploaded.
    parts_checked: bool,
}

/// `Verify::Checksum` for streaming copies: our whole-object value (and composite, multipart)
/// against what the destination and the source report; the destination is read back when it
/// reports nothing (and its parts reported nothing either).
async fn check_checksums(
    ctx: &CopyCtx<'_>,
    meta: &ObjectMeta,
    sent: &SentChecksums<'_>,
    put: &PutResult,
    res: &mut CopyResult,
) -> StoreResult<()> {
    let SentChecksums {
        whole,
        composite,
        parts_checked,
    } = *sent;
    let (src_key, dst, dst_key, opts) = (ctx.src_key, ctx.dst, ctx.dst_key, ctx.opts);
    let algo = opts.checksum_algo;
    // Source: a whole-object value, or a composite one when our layout is the source's.
    if let Some(s) = meta.checksums.get(&algo) {
        if s.contains('-') && composite.is_none_or(|c| c.rsplit('-').next() != s.rsplit('-').next()) {
            res.verified.notes.push(format!(
                "the source's composite {algo:?} is for another part layout: not compared"
            ));
        } else if !verify::checksum_matches(s, whole, composite) {
            return Err(ctx
                .reject(format!(
                    "the bytes read of `{src_key}` have {algo:?} {whole}, the source reports {s}"
                ))
                .await);
        }
    }
    match put.checksum.as_ref().filter(|(a, _)| *a == algo) {
        Some((_, d)) => {
            if !verify::checksum_matches(d, whole, composite) {
                return Err(ctx.reject(format!("destination {algo:?} {d}, expected {whole}")).await);
            }
        }
        None if parts_checked => {}
        None => {
            res.verified
                .notes
                .push(format!("the destination reports no {algo:?}: read back and computed"));
            let (d, n) = ctx.read_checksum(dst, dst_key).await?;
            res.bytes_through_node += n;
            if d != whole {
                return Err(ctx
                    .reject(format!("destination {algo:?} {d} (read back), expected {whole}"))
                    .await);
            }
        }
    }
    res.verified.checksum = Some((algo, whole.to_string()));
    res.checksum = Some((algo, whole.to_string()));
    Ok(())
}

/// Ranged GETs feeding a multipart upload, part by part.
async fn multipart(ctx: &CopyCtx<'_>, meta: &ObjectMeta, wopts: &WriteOptions) -> StoreResult<CopyResult> {
    let CopyCtx {
        src,
        src_key,
        dst,
        dst_key,
        opts,
        tally,
    } = *ctx;
    let size = meta.info.size;
    let want_etag = opts.verify == Verify::Etag;
    let want_ck = opts.verify == Verify::Checksum;
    let algo = opts.checksum_algo;
    let src_etag = source_etag(meta, opts);
    let part_size = streaming_part_size(size, meta.info.etag.as_deref(), opts);
    let n = size.div_ceil(part_size);
    let ranges = part_ranges(size, part_size);
    // Whole-object digests, computed in part order by the consumer.
    let mut whole = Hashes::new(
        want_etag && matches!(src_etag, SourceEtag::Md5(_)),
        want_ck.then_some(algo),
        None,
    );
    let mut md5s: Vec<[u8; 16]> = Vec::new();
    let mut part_cks: Vec<String> = Vec::new();
    let mut parts_checked = want_ck;
    let dst_md5 = etag_is_md5(opts.sse.as_ref());

    let (put, _parts) = run_multipart(
        ctx,
        wopts,
        &ranges,
        |upload_id, part_number, start, end| async move {
            let len = end - start + 1;
            let data = with_retry(opts, "get part", || async move {
                tally.add(|c| c.get += 1);
                let mut body = src.get(src_key, Some((start, end))).await?;
                let mut buf = BytesMut::with_capacity(len as usize);
                while let Some(chunk) = body.next().await {
                    let chunk = chunk?;
                    if let Some(b) = &opts.bandwidth {
                        b.take(chunk.len() as u64).await;
                    }
                    if opts.cancel.is_cancelled() {
                        return Err(cancelled());
                    }
                    buf.extend_from_slice(&chunk);
                    if buf.len() as u64 > len {
                        return Err(StoreError::Other {
                            detail: format!("`{src_key}`: the store returned more than the {len} bytes asked for"),
                        });
                    }
                }
                if (buf.len() as u64) < len {
                    return Err(StoreError::Transient {
                        detail: format!("`{src_key}`: the body ended after {} of {len} bytes", buf.len()),
                    });
                }
                Ok(buf.freeze())
            })
            .await?;
            let md5: Option<[u8; 16]> = want_etag.then(|| Md5::digest(&data).into());
            let checksum = want_ck.then(|| checksum::checksum_b64(algo, &data));
            let part = with_retry(opts, "upload part", || {
                tally.add(|c| c.upload_part += 1);
                dst.upload_part(
                    dst_key,
                    &upload_id,
                    part_number,
                    once_body(data.clone()),
                    len,
                    want_ck.then_some(algo),
                )
            })
            .await?;
            if let (Some(mine), Some((a, theirs))) = (&checksum, &part.checksum) {
                if *a == algo && mine != theirs {
                    return Err(ctx.mismatch(format!(
                        "part {part_number}: destination {algo:?} {theirs}, expected {mine}"
                    )));
                }
            }
            if let Some(m) = &md5 {
                let e = verify::norm_etag(&part.etag);
                if dst_md5 && verify::is_plain_md5(&e) && e != hex::encode(m) {
                    return Err(ctx.mismatch(format!(
                        "part {part_number}: destination ETag {e}, expected {}",
                        hex::encode(m)
                    )));
                }
            }
            Ok(PartDone {
                part,
                data: Some(data),
                md5,
                checksum,
            })
        },
        |done| {
            if let Some(d) = &done.data {
                whole.update(d);
            }
            if let Some(m) = done.md5 {
                md5s.push(m);
            }
            match &done.checksum {
                Some(c) => {
                    if done.part.checksum.is_none() {
                        parts_checked = false;
                    }
                    part_cks.push(c.clone());
                }
                None => parts_checked = false,
            }
            Ok(())
        },
    )
    .await?; // a part-level mismatch aborted the upload: nothing to delete
    let mut res = streamed_result(size, whole.n, Some((n as u32, part_size)), &put);
    if opts.verify == Verify::None {
        return Ok(res);
    }
    check_streamed_size(ctx, size, whole.n).await?;
    res.verified.size = true;
    if want_etag {
        let expected = checksum::multipart_etag(&md5s);
        let whole_md5 = whole.md5.clone().map(|h| hex::encode(h.finalize())).unwrap_or_default();
        match &src_etag {
            SourceEtag::Md5(_) => check_source_etag(ctx, &src_etag, &whole_md5, None, &mut res.verified).await?,
            _ => check_source_etag(ctx, &src_etag, "", Some(&expected), &mut res.verified).await?,
        }
        check_dest_etag(ctx, put.etag.as_deref(), &expected, &mut res.verified).await?;
    }
    if want_ck {
        let w = whole.checksum.as_ref().expect("checksum requested").base64();
        let composite = checksum::composite_checksum(algo, &part_cks);
        let sent = SentChecksums {
            whole: &w,
            composite: composite.as_deref(),
            parts_checked,
        };
        check_checksums(ctx, meta, &sent, &put, &mut res).await?;
    }
    Ok(res)
}

/// The result of a streamed copy before verification; `layout` is (parts, part size) for a
/// multipart upload.
fn streamed_result(size: u64, streamed: u64, layout: Option<(u32, u64)>, put: &PutResult) -> CopyResult {
    CopyResult {
        mode: CopyMode::Streaming,
        size,
        bytes_through_node: streamed,
        parts: layout.map(|l| l.0),
        part_size: layout.map(|l| l.1),
        etag: put.etag.clone(),
        checksum: put.checksum.clone(),
        verified: Verified::default(),
        requests: RequestCounts::default(),
    }
}

/// Size check of a streamed copy: the bytes that went through the node must be the source's
/// size; otherwise the destination object is a bad copy and is deleted.
async fn check_streamed_size(ctx: &CopyCtx<'_>, size: u64, streamed: u64) -> Result<(), StoreError> {
    if streamed == size {
        return Ok(());
    }
    Err(ctx
        .reject(format!("streamed {streamed} bytes, the source has {size}"))
        .await)
}
