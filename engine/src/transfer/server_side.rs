//! Server-side copies: the store copies, no object bytes pass through the node.
//!
//! In the data flow: [`copy`] sends one CopyObject up to `copy_object_max` (with the listing
//! entry known and metadata kept by the store, that is the only request), else
//! CreateMultipartUpload + UploadPartCopy per part through the multipart driver, then
//! [`verify()`](fn@verify) checks the result — equal MD5 ETags, the multipart ETag against its parts, the
//! destination's size, or checksums (read back through the node when a store reports none).

use super::multipart::{part_ranges, run_multipart, PartDone};
use super::{etag_is_md5, server_part_size, with_retry, write_options, CopyCtx, CopyMode, CopyResult, RequestCounts};
use crate::checksum;
use crate::store::{CompletedPart, ObjectInfo, ObjectMeta, PutResult, StoreError, StoreResult, WriteOptions};
use crate::verify::{self, Verified, Verify};

/// Copies `ctx.src_key` to `ctx.dst_key` on the same endpoint; `info` is the source's listing
/// entry when known (saves the HEAD of a plain CopyObject).
pub(super) async fn copy(ctx: &CopyCtx<'_>, info: Option<&ObjectInfo>) -> StoreResult<CopyResult> {
    let CopyCtx {
        src,
        src_key,
        dst,
        dst_key,
        opts,
        tally,
    } = *ctx;
    let source = src.copy_source(src_key).ok_or_else(|| StoreError::Other {
        detail: format!("{} cannot be the source of a server-side copy (not S3)", src.describe()),
    })?;
    // Size (and ETag) from the listing when known; HEAD only when needed. A destination whose
    // CopyObject keeps metadata and tags (directive COPY) needs neither HEAD nor tagging.
    let keep = opts.overrides.keeps_metadata() && dst.copy_keeps_metadata();
    let small = info.is_some_and(|i| i.size <= opts.copy_object_max);
    let need_head = info.is_none() || !keep || !small || opts.verify == Verify::Checksum;
    let meta: Option<ObjectMeta> = if need_head { Some(ctx.head_src().await?) } else { None };
    let src_info = match (&meta, info) {
        (Some(m), _) => m.info.clone(),
        (None, Some(i)) => i.clone(),
        (None, None) => unreachable!("head when the listing entry is unknown"),
    };
    let size = src_info.size;

    if size <= opts.copy_object_max {
        // One CopyObject. With nothing overridden and a store that copies metadata and tags
        // itself, the WriteOptions carry no content headers, user metadata or tags. Otherwise
        // the full merged set is sent (directive REPLACE), with the source's tags.
        let wopts = if keep {
            WriteOptions {
                tags: opts.overrides.tags.clone().unwrap_or_default(),
                storage_class: opts.storage_class.clone(),
                sse: opts.sse.clone(),
                checksum: (opts.verify == Verify::Checksum).then_some(opts.checksum_algo),
                ..Default::default()
            }
        } else {
            let m = meta.as_ref().expect("head when not keeping metadata");
            // Tags: the store's TaggingDirective COPY when it can, else sent explicitly.
            let tags = if dst.copy_keeps_metadata() && opts.overrides.tags.is_none() {
                Vec::new()
            } else {
                ctx.src_tags().await?
            };
            write_options(m, tags, opts)
        };
        let put = with_retry(opts, "copy object", || {
            tally.add(|c| c.copy += 1);
            dst.copy_object(&source, dst_key, &wopts)
        })
        .await?;
        let mut res = CopyResult {
            mode: CopyMode::ServerSide,
            size,
            bytes_through_node: 0,
            parts: None,
            part_size: None,
            etag: put.etag.clone(),
            checksum: put.checksum.clone(),
            verified: Verified::default(),
            requests: RequestCounts::default(),
        };
        verify(ctx, &src_info, meta.as_ref(), &put, None, &mut res).await?;
        return Ok(res);
    }

    // UploadPartCopy: metadata and tags must be set on CreateMultipartUpload ourselves.
    let m = match meta {
        Some(m) => m,
        None => ctx.head_src().await?,
    };
    let tags = ctx.src_tags().await?;
    let wopts = write_options(&m, tags, opts);
    let size = m.info.size;
    let part_size = server_part_size(size, m.info.etag.as_deref(), opts);
    let n = size.div_ceil(part_size);
    let ranges = part_ranges(size, part_size);

    let source = &source;
    let (put, parts) = run_multipart(
        ctx,
        &wopts,
        &ranges,
        |upload_id, part_number, start, end| async move {
            let part = with_retry(opts, "upload part copy", || {
                tally.add(|c| c.upload_part_copy += 1);
                dst.upload_part_copy(source, dst_key, &upload_id, part_number, (start, end))
            })
            .await?;
            Ok(PartDone {
                part,
                data: None,
                md5: None,
                checksum: None,
            })
        },
        |_| Ok(()),
    )
    .await?;

    let mut res = CopyResult {
        mode: CopyMode::ServerSide,
        size,
        bytes_through_node: 0,
        parts: Some(n as u32),
        part_size: Some(part_size),
        etag: put.etag.clone(),
        checksum: put.checksum.clone(),
        verified: Verified::default(),
        requests: RequestCounts::default(),
    };
    verify(ctx, &m.info, Some(&m), &put, Some(&parts), &mut res).await?;
    Ok(res)
}

/// Verifies a server-side copy as `opts.verify` asks. `src_meta` is the source's HEAD when one
/// was made; `parts` are the parts of a multipart copy.
async fn verify(
    ctx: &CopyCtx<'_>,
    src_info: &ObjectInfo,
    src_meta: Option<&ObjectMeta>,
    put: &PutResult,
    parts: Option<&[CompletedPart]>,
    res: &mut CopyResult,
) -> StoreResult<()> {
    let CopyCtx {
        src,
        src_key,
        dst,
        dst_key,
        opts,
        tally,
    } = *ctx;
    let v = &mut res.verified;
    let src_etag = src_info.etag.as_deref().map(verify::norm_etag);
    let dst_etag = put.etag.as_deref().map(verify::norm_etag);
    let kms = !etag_is_md5(opts.sse.as_ref()) || src_meta.as_ref().is_some_and(|m| !etag_is_md5(m.sse.as_ref()));
    match opts.verify {
        Verify::None => {}
        Verify::Size | Verify::Etag => {
            // Equal MD5 ETags mean equal bytes (hence equal size) with no extra request.
            let md5s = !kms
                && src_etag.as_deref().is_some_and(verify::is_plain_md5)
                && dst_etag.as_deref().is_some_and(verify::is_plain_md5);
            if md5s && parts.is_none() {
                if src_etag != dst_etag {
                    return Err(ctx
                        .reject(format!(
                            "ETag {} after CopyObject, source has {}",
                            dst_etag.unwrap_or_default(),
                            src_etag.unwrap_or_default()
                        ))
                        .await);
                }
                v.size = true;
                v.etag = true;
                v.source_etag = true;
                return Ok(());
            }
            if let (Some(parts), Some(d)) = (parts, dst_etag.as_deref()) {
                // The multipart ETag must be the MD5 of the part ETags the copy returned.
                let part_etags: Vec<&str> = parts.iter().map(|p| p.etag.as_str()).collect();
                match checksum::multipart_etag_hex(&part_etags) {
                    Some(expected) if !kms && verify::multipart_parts(d).is_some() => {
                        if expected != d {
                            return Err(ctx.reject(format!("multipart ETag {d} does not match its parts ({expected})")).await);
                        }
                        v.etag = true;
                        v.source_etag = src_etag.as_deref() == Some(d);
                    }
                    _ => v.notes.push(format!(
                        "the store's ETags are not MD5-based here (final `{d}`, part 1 `{}`; SSE-KMS or a non-AWS store): ETag not verified",
                        parts.first().map(|p| p.etag.as_str()).unwrap_or("")
                    )),
                }
            } else if opts.verify == Verify::Etag {
                v.notes.push(if kms {
                    "SSE-KMS ETags are not MD5s: verified by size".into()
                } else {
                    "the source ETag is multipart and CopyObject writes a single-part one: verified by size".to_string()
                });
            }
            tally.add(|c| c.head += 1);
            let d = with_retry(opts, "head destination", || dst.head(dst_key)).await?;
            if d.info.size != src_info.size {
                return Err(ctx
                    .reject(format!(
                        "destination has {} bytes, source {}",
                        d.info.size, src_info.size
                    ))
                    .await);
            }
            v.size = true;
        }
        Verify::Checksum => {
            let algo = opts.checksum_algo;
            let src_ck = src_meta
                .as_ref()
                .and_then(|m| m.checksums.get(&algo))
                .filter(|c| !c.contains('-'))
                .cloned();
            let dst_ck = put
                .checksum
                .as_ref()
                .filter(|(a, c)| *a == algo && !c.contains('-'))
                .map(|(_, c)| c.clone());
            let (s, d) = match (src_ck, dst_ck) {
                (Some(s), Some(d)) => (s, d),
                (s, d) => {
                    // Not reported on both sides: compute both by reading (bytes pass through the node).
                    v.notes.push(format!(
                        "{algo:?} not reported by both stores: computed by reading source and destination"
                    ));
                    let s = match s {
                        Some(s) => s,
                        None => ctx.read_checksum(src, src_key).await?.0,
                    };
                    let d = match d {
                        Some(d) => d,
                        None => {
                            let (d, n) = ctx.read_checksum(dst, dst_key).await?;
                            res.bytes_through_node += n;
                            d
                        }
                    };
                    (s, d)
                }
            };
            if s != d {
                return Err(ctx
                    .reject(format!("{algo:?} {d} at the destination, source has {s}"))
                    .await);
            }
            v.size = true;
            v.checksum = Some((algo, d.clone()));
            res.checksum = Some((algo, d));
        }
    }
    Ok(())
}
