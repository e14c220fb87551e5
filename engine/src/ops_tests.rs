//! Unit tests of transfer, verification and range operations on the real filesystem store
//! ([`super::fs::FsStore`] in a tempdir) wrapped in [`FaultyStore`], which counts the requests
//! the store really sees and injects faults. What needs S3 semantics (server-side CopyObject and
//! UploadPartCopy, their request costs) is in `tests/tests/engine_ops.rs`, against SeaweedFS.

use std::sync::Arc;
use std::time::Duration;

use super::checksum;
use super::faulty::{Fault, FaultyStore, Op, Rule};
use super::filter::Filter;
use super::ops::{Action, KeyMap, RangeOp, RangeOptions, SharedLimits, SkipReason};
use super::store::*;
use super::testkit::*;
use super::transfer::*;
use super::verify::Verify;

/// Two filesystem stores, `src` and `dst`, in `dir`, each behind a [`FaultyStore`].
fn pair(dir: &tempfile::TempDir) -> (FaultyStore, FaultyStore) {
    let f = |n| FaultyStore::new(Arc::new(fs_store(dir.path(), n)));
    (f("src"), f("dst"))
}

/// Key `i` of `keys` gets `10 + i` bytes.
async fn fill(st: &dyn ObjectStore, keys: &[&str]) {
    for (i, k) in keys.iter().enumerate() {
        put(st, k, &data(10 + i, i as u8), &WriteOptions::default()).await;
    }
}

fn ropts(copy: CopyOptions) -> RangeOptions {
    RangeOptions {
        copy: quick(copy),
        ..Default::default()
    }
}

#[tokio::test]
async fn streaming_single_put_carries_metadata_and_tags() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = pair(&dir);
    put(&src, "dir/a b.png", &data(5000, 1), &rich()).await;
    src.take_counts();
    let opts = quick(CopyOptions {
        verify: Verify::Etag,
        ..Default::default()
    });
    let r = copy_object(&src, "dir/a b.png", &dst, "x/a b.png", &opts)
        .await
        .unwrap();
    assert_eq!((r.mode, r.parts), (CopyMode::Streaming, None));
    assert!(
        r.verified.etag && r.verified.source_etag && r.verified.size,
        "{:?}",
        r.verified
    );
    let want = RequestCounts {
        head: 1,
        get_tags: 1,
        get: 1,
        put: 1,
        ..Default::default()
    };
    assert_eq!(r.requests, want);
    let mut seen = src.take_counts();
    seen += dst.take_counts();
    assert_eq!(seen, want, "what the stores saw");
    assert_eq!(r.bytes_through_node, 5000);
    assert_carried(&src, "dir/a b.png", &dst, "x/a b.png").await;
}

#[tokio::test]
async fn streaming_single_and_multipart_in_every_verification_mode() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = pair(&dir);
    let body = data(2500, 2);
    put(&src, "in/data.csv", &body, &rich()).await;
    for v in [Verify::None, Verify::Size, Verify::Etag, Verify::Checksum] {
        let single = format!("single/{v:?}");
        let r = copy_object(
            &src,
            "in/data.csv",
            &dst,
            &single,
            &quick(CopyOptions {
                verify: v,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
        assert_eq!((r.mode, r.parts), (CopyMode::Streaming, None));
        assert_carried(&src, "in/data.csv", &dst, &single).await;
        let multi = format!("multi/{v:?}");
        let opts = quick(CopyOptions {
            verify: v,
            multipart_threshold: 1000,
            part_size: Some(300),
            parts_in_flight: 3,
            ..Default::default()
        });
        let r = copy_object(&src, "in/data.csv", &dst, &multi, &opts).await.unwrap();
        assert_eq!(r.parts, Some(9), "{v:?}");
        assert_eq!((r.requests.get, r.requests.upload_part), (9, 9), "{v:?}");
        assert_carried(&src, "in/data.csv", &dst, &multi).await;
        match v {
            Verify::Etag => {
                assert!(r.verified.etag && r.verified.source_etag, "{:?}", r.verified);
                // The destination ETag is the multipart ETag of 300-byte parts.
                assert_eq!(r.etag.unwrap(), checksum::etag_of(&body, Some(300)));
            }
            Verify::Checksum => {
                let (a, c) = r.verified.checksum.unwrap();
                assert_eq!(a, ChecksumAlgo::Crc32c);
                assert_eq!(c, checksum::checksum_b64(ChecksumAlgo::Crc32c, &body));
            }
            _ => {}
        }
    }
    assert!(dst.list_multipart_uploads("").await.unwrap().is_empty());
}

#[tokio::test]
async fn multipart_source_layout_is_matched_so_etags_agree() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = pair(&dir);
    let body = data(2000, 3);
    put_multipart(&src, "mp", &body, 700, &WriteOptions::default()).await;
    let src_etag = src.head("mp").await.unwrap().info.etag.unwrap();
    assert!(src_etag.ends_with("-3"), "{src_etag}");
    let opts = quick(CopyOptions {
        verify: Verify::Etag,
        multipart_threshold: 100,
        part_size: Some(700),
        ..Default::default()
    });
    let r = copy_object(&src, "mp", &dst, "mp", &opts).await.unwrap();
    assert_eq!(r.etag.as_deref(), Some(src_etag.as_str()));
    assert!(r.verified.source_etag);
    // A single PUT of a multipart source still checks the source ETag with the inferred layout.
    let opts = quick(CopyOptions {
        verify: Verify::Etag,
        part_size: Some(700),
        ..Default::default()
    });
    let r = copy_object(&src, "mp", &dst, "mp-single", &opts).await.unwrap();
    assert!(r.verified.source_etag && r.verified.etag, "{:?}", r.verified);
}

#[tokio::test]
async fn broken_get_bodies_and_transient_writes_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = pair(&dir);
    let body = data(100_000, 6);
    put(&src, "k", &body, &WriteOptions::default()).await;
    src.inject(Rule::new(&[Op::Get], Fault::BreakBodyAfter(30_000)).times(2));
    let r = copy_object(
        &src,
        "k",
        &dst,
        "k",
        &quick(CopyOptions {
            verify: Verify::Etag,
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    assert_eq!(r.requests.get, 3);
    assert_eq!(read(&dst, "k").await, body);
    src.inject(Rule::new(&[Op::Get], Fault::BreakBodyAfter(10_000)).times(2));
    dst.inject(Rule::new(Op::WRITES, Fault::transient()).times(1));
    let opts = quick(CopyOptions {
        verify: Verify::Checksum,
        multipart_threshold: 1,
        part_size: Some(40_000),
        ..Default::default()
    });
    let r = copy_object(&src, "k", &dst, "k2", &opts).await.unwrap();
    assert_eq!(r.requests.get, 5, "3 parts + 2 re-GETs");
    assert_eq!(r.requests.create_multipart, 2, "1 transient failure + 1");
    assert_eq!(read(&dst, "k2").await, body);
    // Out of retries: the error surfaces and the upload is aborted.
    src.inject(Rule::new(&[Op::Get], Fault::BreakBodyAfter(10_000)));
    let e = copy_object(&src, "k", &dst, "k3", &CopyOptions { retries: 2, ..opts })
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(dst.list_multipart_uploads("").await.unwrap().is_empty());
    assert_eq!(dst.counts().abort_multipart, 1);
}

#[tokio::test]
async fn corruption_is_a_mismatch_and_the_bad_copy_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = pair(&dir);
    put(&src, "k", &data(4000, 7), &WriteOptions::default()).await;
    dst.inject(Rule::new(Op::UPLOADS, Fault::Tamper).key("k"));
    for (v, mp) in [
        (Verify::Etag, false),
        (Verify::Etag, true),
        (Verify::Checksum, false),
        (Verify::Checksum, true),
    ] {
        let opts = quick(CopyOptions {
            verify: v,
            multipart_threshold: if mp { 1 } else { u64::MAX },
            part_size: Some(1500),
            ..Default::default()
        });
        let e = copy_object(&src, "k", &dst, "k", &opts).await.unwrap_err();
        assert!(matches!(e, StoreError::Mismatch { .. }), "{v:?} {mp}: {e}");
        assert!(
            matches!(dst.head("k").await, Err(StoreError::NotFound { .. })),
            "bad copy deleted ({v:?} {mp})"
        );
    }
    assert!(dst.list_multipart_uploads("").await.unwrap().is_empty());
    // A store that reports no checksums is read back.
    dst.inject(Rule::new(
        &[Op::Put, Op::UploadPart, Op::CompleteMultipart, Op::Head],
        Fault::HideChecksums,
    ));
    let gets = dst.counts().get;
    let e = copy_object(
        &src,
        "k",
        &dst,
        "k",
        &quick(CopyOptions {
            verify: Verify::Checksum,
            ..Default::default()
        }),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, StoreError::Mismatch { .. }), "{e}");
    assert_eq!(dst.counts().get, gets + 1, "read back");
    // Size alone does not see a flipped byte, and says nothing false.
    let r = copy_object(
        &src,
        "k",
        &dst,
        "k",
        &quick(CopyOptions {
            verify: Verify::Size,
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    assert!(r.verified.size && !r.verified.etag && r.verified.checksum.is_none());
    assert_ne!(read(&dst, "k").await, read(&src, "k").await);
    // A source that changed under the copy (other bytes, old ETag) is caught by Etag.
    dst.heal();
    src.inject(Rule::new(&[Op::Get], Fault::Tamper).key("k"));
    let e = copy_object(
        &src,
        "k",
        &dst,
        "k9",
        &quick(CopyOptions {
            verify: Verify::Etag,
            ..Default::default()
        }),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, StoreError::Mismatch { .. }), "{e}");
    assert!(matches!(dst.head("k9").await, Err(StoreError::NotFound { .. })));
}

#[tokio::test]
async fn cancellation_aborts_started_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = pair(&dir);
    put(&src, "k", &data(300_000, 3), &WriteOptions::default()).await;
    let log = UploadLog::new();
    let opts = CopyOptions {
        multipart_threshold: 1,
        part_size: Some(64 * 1024),
        bandwidth: Some(ByteRateLimiter::new(300_000, 16 * 1024)), // ~1 s for the object
        uploads: Some(log.clone()),
        ..Default::default()
    };
    let cancel = opts.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        cancel.cancel();
    });
    let e = copy_object(&src, "k", &dst, "k", &opts).await.unwrap_err();
    assert!(is_cancelled(&e), "{e}");
    assert_eq!(log.started_total(), 1);
    assert!(log.open().is_empty(), "finished in the registry");
    assert!(
        dst.list_multipart_uploads("").await.unwrap().is_empty(),
        "aborted on the store"
    );
    assert_eq!(dst.counts().abort_multipart, 1);
    assert!(matches!(dst.head("k").await, Err(StoreError::NotFound { .. })));
}

#[tokio::test]
async fn sweep_aborts_owned_leftovers_only() {
    let dir = tempfile::tempdir().unwrap();
    let (_, dst) = pair(&dir);
    let log = UploadLog::new();
    let mine = dst.create_multipart("x/mine", &WriteOptions::default()).await.unwrap();
    log.started(&dst.describe(), "x/mine", &mine);
    let theirs = dst
        .create_multipart("x/theirs", &WriteOptions::default())
        .await
        .unwrap();
    let owned = |u: &UploadInfo| log.owns(&u.key, &u.upload_id);
    let young = sweep_uploads(&dst, "x/", Some(Duration::from_secs(3600)), owned)
        .await
        .unwrap();
    assert!(young.aborted.is_empty(), "too young to sweep");
    assert_eq!(young.kept, 2);
    let rep = sweep_uploads(&dst, "x/", None, owned).await.unwrap();
    assert_eq!(rep.aborted.len(), 1);
    assert_eq!(rep.aborted[0].key, "x/mine");
    assert_eq!((rep.kept, rep.failed.len()), (1, 0));
    let left: Vec<_> = dst
        .list_multipart_uploads("")
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.upload_id)
        .collect();
    assert_eq!(left, vec![theirs]);
}

#[tokio::test]
async fn key_corpus_round_trips_through_copy_and_sync() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = pair(&dir);
    let mut corpus = key_corpus();
    corpus.extend(fs_only_keys());
    for k in &corpus {
        put(&src, k, &corpus_data(k), &WriteOptions::default()).await;
    }
    let opts = ropts(CopyOptions {
        verify: Verify::Etag,
        ..Default::default()
    });
    let all = KeyRange::default();
    let (sum, out) = run_collect(
        RangeOp::Copy,
        &src,
        &dst,
        &all,
        &KeyMap::identity(),
        &Filter::new(),
        &opts,
    )
    .await;
    assert_eq!(sum.failed, 0, "{out:#?}");
    assert_eq!(sum.copied as usize, corpus.len());
    let mut sorted = corpus.clone();
    sorted.sort();
    assert_eq!(keys(&dst).await, sorted);
    for k in &corpus {
        assert_eq!(read(&src, k).await, read(&dst, k).await, "{k}");
    }
    // A sync then finds everything identical.
    let (sum, _) = run_collect(
        RangeOp::Sync { delete: true },
        &src,
        &dst,
        &all,
        &KeyMap::identity(),
        &Filter::new(),
        &opts,
    )
    .await;
    assert_eq!((sum.copied, sum.skipped, sum.deleted), (0, corpus.len() as u64, 0));
}

#[tokio::test]
async fn move_deletes_only_verified_sources() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = pair(&dir);
    // a, b, c single PUTs; d, e multipart. b and d are refused, c's copy is corrupted.
    for (i, (k, n)) in [("a", 3000), ("b", 3000), ("c", 3000), ("d", 5000), ("e", 5000)]
        .into_iter()
        .enumerate()
    {
        put(&src, k, &data(n, i as u8), &WriteOptions::default()).await;
    }
    dst.inject(Rule::new(Op::WRITES, Fault::denied()).key("m/b"));
    dst.inject(Rule::new(Op::WRITES, Fault::denied()).key("m/d"));
    dst.inject(Rule::new(Op::UPLOADS, Fault::Tamper).key("m/c"));
    let opts = RangeOptions {
        concurrency: 2,
        ..ropts(CopyOptions {
            verify: Verify::Etag,
            multipart_threshold: 4000,
            part_size: Some(2000),
            ..Default::default()
        })
    };
    let (sum, out) = run_collect(
        RangeOp::Move,
        &src,
        &dst,
        &KeyRange::default(),
        &KeyMap::new("", "m/"),
        &Filter::new(),
        &opts,
    )
    .await;
    assert_eq!((sum.deleted, sum.failed), (2, 3), "{out:#?}");
    assert_eq!(
        keys(&src).await,
        vec!["b", "c", "d"],
        "failed and unverified sources stay"
    );
    assert_eq!(keys(&dst).await, vec!["m/a", "m/e"]);
    assert_eq!(
        sum.requests.delete,
        1 + 1,
        "one batched delete of sources + the bad copy"
    );
    assert_eq!(src.counts().delete, 1);
    assert_eq!(sum.last_completed_key.as_deref(), Some("a"));
    let mut moved: Vec<_> = out
        .iter()
        .filter(|o| o.action == Action::Moved)
        .map(|o| o.key.as_str())
        .collect();
    moved.sort();
    assert_eq!(moved, vec!["a", "e"]);
    assert!(dst.list_multipart_uploads("").await.unwrap().is_empty());
}

#[tokio::test]
async fn move_with_verify_none_still_verifies_size_and_reports_a_failed_delete() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = pair(&dir);
    fill(&src, &["a", "b"]).await;
    src.inject(Rule::new(&[Op::Delete], Fault::denied()).key("b"));
    let (sum, out) = run_collect(
        RangeOp::Move,
        &src,
        &dst,
        &KeyRange::default(),
        &KeyMap::identity(),
        &Filter::new(),
        &ropts(CopyOptions {
            verify: Verify::None,
            ..Default::default()
        }),
    )
    .await;
    assert_eq!((sum.deleted, sum.failed), (1, 1));
    assert_eq!(keys(&src).await, vec!["b"]);
    assert_eq!(keys(&dst).await, vec!["a", "b"]);
    let b = &out.iter().find(|o| o.key == "b").unwrap().action;
    assert!(
        matches!(b, Action::Failed(StoreError::Other { detail }) if detail.contains("not deleted")),
        "{b:?}"
    );
}

#[tokio::test]
async fn sync_copies_changes_and_deletes_extraneous_but_not_excluded() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = pair(&dir);
    fill(&src, &["p/a", "p/b", "p/c", "p/tmp/x"]).await;
    // dst: a identical, b different, extra e, extra tmp/y (excluded), and q/z outside the range.
    put(&dst, "p/a", &read(&src, "p/a").await, &WriteOptions::default()).await;
    for (k, v) in [
        ("p/b", "old"),
        ("p/e", "extra"),
        ("p/tmp/y", "keep"),
        ("q/z", "outside"),
    ] {
        put(&dst, k, v.as_bytes(), &WriteOptions::default()).await;
    }
    let filter = Filter::new().exclude("tmp/**").unwrap();
    let range = KeyRange {
        prefix: "p/".into(),
        ..Default::default()
    };
    let map = KeyMap::new("p/", "p/");
    let opts = ropts(CopyOptions::default());
    let op = RangeOp::Sync { delete: true };

    // Dry run first: nothing written.
    src.take_counts();
    dst.take_counts();
    let dry = RangeOptions {
        dry_run: true,
        ..opts.clone()
    };
    let (sum, _) = run_collect(op, &src, &dst, &range, &map, &filter, &dry).await;
    assert_eq!(
        (sum.would_copy, sum.would_delete, sum.skipped, sum.excluded),
        (2, 1, 1, 1)
    );
    let lists = RequestCounts {
        list: 1,
        ..Default::default()
    };
    assert_eq!((src.counts(), dst.counts()), (lists, lists), "only listings are real");
    assert_eq!(
        sum.requests,
        RequestCounts {
            list: 2,
            ..Default::default()
        }
    );
    assert_eq!(
        sum.planned_requests,
        RequestCounts {
            head: 2,
            get_tags: 2,
            get: 2,
            put: 2,
            delete: 1,
            ..Default::default()
        }
    );
    assert_eq!(sum.bytes_cross_endpoint, 11 + 12, "p/b and p/c");
    assert_eq!(keys(&dst).await, vec!["p/a", "p/b", "p/e", "p/tmp/y", "q/z"]);

    let (sum, out) = run_collect(op, &src, &dst, &range, &map, &filter, &opts).await;
    assert_eq!((sum.copied, sum.skipped, sum.deleted, sum.failed), (2, 1, 1, 0));
    assert_eq!(keys(&dst).await, vec!["p/a", "p/b", "p/c", "p/tmp/y", "q/z"]);
    assert_eq!(read(&dst, "p/b").await, read(&src, "p/b").await);
    assert_eq!(sum.last_completed_key.as_deref(), Some("p/tmp/x"));
    assert!(out.iter().any(|o| o.dst_key == "p/e" && o.action == Action::Deleted));

    // Second run: everything identical.
    let (sum, _) = run_collect(op, &src, &dst, &range, &map, &filter, &opts).await;
    assert_eq!((sum.copied, sum.skipped, sum.deleted), (0, 3, 0));
}

#[tokio::test]
async fn sync_deletes_nothing_in_a_range_with_an_error_nor_beyond_max_delete() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = pair(&dir);
    fill(&src, &["a", "b", "c"]).await;
    put(&dst, "d", b"extra", &WriteOptions::default()).await;
    put(&dst, "0", b"extra", &WriteOptions::default()).await;
    dst.inject(Rule::new(Op::WRITES, Fault::denied()).key("b"));
    let opts = ropts(CopyOptions::default());
    let all = KeyRange::default();
    let op = RangeOp::Sync { delete: true };
    let (sum, out) = run_collect(op, &src, &dst, &all, &KeyMap::identity(), &Filter::new(), &opts).await;
    assert_eq!((sum.copied, sum.failed, sum.deleted), (2, 1, 0));
    assert!(
        sum.delete_suppressed.as_deref().unwrap().contains("failed"),
        "{:?}",
        sum.delete_suppressed
    );
    assert_eq!(keys(&dst).await, vec!["0", "a", "c", "d"]);
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o.action, Action::DeleteSuppressed(_)))
            .count(),
        2
    );
    assert_eq!(sum.last_completed_key, None, "the extraneous `0` is not finished");
    // max_delete guards too.
    dst.heal();
    let opts = RangeOptions {
        max_delete: Some(1),
        ..opts
    };
    let (sum, _) = run_collect(op, &src, &dst, &all, &KeyMap::identity(), &Filter::new(), &opts).await;
    assert_eq!((sum.deleted, sum.failed), (0, 0));
    assert!(sum.delete_suppressed.unwrap().contains("max_delete"));
    assert_eq!(keys(&dst).await, vec!["0", "a", "b", "c", "d"]);
}

#[tokio::test]
async fn skip_existing_uses_the_listing_not_heads() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = pair(&dir);
    fill(&src, &["a", "b", "c"]).await;
    put(&dst, "a", &read(&src, "a").await, &WriteOptions::default()).await;
    src.take_counts();
    dst.take_counts();
    let opts = RangeOptions {
        skip_existing: true,
        ..ropts(CopyOptions::default())
    };
    let (sum, _) = run_collect(
        RangeOp::Copy,
        &src,
        &dst,
        &KeyRange::default(),
        &KeyMap::identity(),
        &Filter::new(),
        &opts,
    )
    .await;
    assert_eq!((sum.copied, sum.skipped), (2, 1));
    // One LIST per side; nothing at all for the identical `a` (no HEAD on either side).
    assert_eq!(
        src.counts(),
        RequestCounts {
            list: 1,
            head: 2,
            get_tags: 2,
            get: 2,
            ..Default::default()
        }
    );
    assert_eq!(
        dst.counts(),
        RequestCounts {
            list: 1,
            put: 2,
            ..Default::default()
        }
    );
}

#[tokio::test]
async fn ranges_checkpoints_and_filters_on_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = pair(&dir);
    fill(&src, &["a", "b", "c", "d", "e"]).await;
    let range = KeyRange {
        prefix: String::new(),
        start_after: Some("a".into()),
        end: Some("d".into()),
        path_order: false,
    };
    let filter = Filter {
        min_size: Some(12),
        ..Default::default()
    };
    let opts = RangeOptions {
        page_size: 2,
        ..ropts(CopyOptions::default())
    };
    let (sum, _) = run_collect(RangeOp::Copy, &src, &dst, &range, &KeyMap::identity(), &filter, &opts).await;
    // b (11 bytes) excluded by size; c, d copied; a and e outside the range.
    assert_eq!((sum.listed_objects, sum.excluded, sum.copied), (3, 1, 2));
    assert_eq!(keys(&dst).await, vec!["c", "d"]);
    assert_eq!(sum.last_completed_key.as_deref(), Some("d"));
    assert_eq!(sum.requests.list, 2);
}

#[tokio::test]
async fn cancelled_range_drains_and_reports_interruption() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = pair(&dir);
    for i in 0..20 {
        put(&src, &format!("k{i:02}"), &data(50_000, i), &WriteOptions::default()).await;
    }
    let log = UploadLog::new();
    let copy = CopyOptions {
        multipart_threshold: 1,
        part_size: Some(20_000),
        bandwidth: Some(ByteRateLimiter::new(500_000, 16 * 1024)),
        uploads: Some(log.clone()),
        ..Default::default()
    };
    let cancel = copy.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
    });
    let opts = RangeOptions {
        copy,
        concurrency: 3,
        ..Default::default()
    };
    let (sum, _) = run_collect(
        RangeOp::Copy,
        &src,
        &dst,
        &KeyRange::default(),
        &KeyMap::identity(),
        &Filter::new(),
        &opts,
    )
    .await;
    assert!(
        sum.interrupted.as_ref().is_some_and(is_cancelled),
        "{:?}",
        sum.interrupted
    );
    assert!(sum.copied < 20);
    assert!(dst.list_multipart_uploads("").await.unwrap().is_empty());
    assert!(log.open().is_empty());
    if let Some(k) = &sum.last_completed_key {
        for sk in keys(&src).await.iter().filter(|s| *s <= k) {
            assert_eq!(
                read(&dst, sk).await,
                read(&src, sk).await,
                "{sk} is before the checkpoint"
            );
        }
    }
    assert!(sum.into_result().is_err());
}

#[test]
fn key_map_ranges() {
    let m = KeyMap::new("photos/", "backup/2024/");
    let (s, d) = m
        .ranges(&KeyRange {
            prefix: "photos/a".into(),
            start_after: Some("photos/a1".into()),
            end: Some("photos/a9".into()),
            path_order: false,
        })
        .unwrap()
        .unwrap();
    assert_eq!(s.prefix, "photos/a");
    assert_eq!(
        d,
        KeyRange {
            prefix: "backup/2024/a".into(),
            start_after: Some("backup/2024/a1".into()),
            end: Some("backup/2024/a9".into()),
            path_order: false,
        }
    );
    let (s, _) = m.ranges(&KeyRange::default()).unwrap().unwrap();
    assert_eq!(s.prefix, "photos/");
    assert!(m
        .ranges(&KeyRange {
            prefix: "docs/".into(),
            ..Default::default()
        })
        .is_err());
    assert!(m
        .ranges(&KeyRange {
            start_after: Some("q".into()),
            ..Default::default()
        })
        .unwrap()
        .is_none());
    assert!(m
        .ranges(&KeyRange {
            end: Some("a".into()),
            ..Default::default()
        })
        .unwrap()
        .is_none());
    assert_eq!(m.to_dst("photos/x"), Some("backup/2024/x".into()));
    assert_eq!(m.to_src("backup/2024/x"), Some("photos/x".into()));
}

#[test]
fn part_size_planning() {
    let o = CopyOptions::default();
    let gib = 1024 * 1024 * 1024u64;
    // Server-side: 16–512 MiB, ≤ 10,000 parts.
    for size in [6 * gib, 100 * gib, 1024 * gib, 5 * 1024 * gib] {
        let p = server_part_size(size, None, &o);
        assert!(size.div_ceil(p) <= 10_000, "{size}");
        assert!(p >= 16 << 20);
        assert!(p <= 512 << 20 || size.div_ceil(512 << 20) > 10_000);
        let p = streaming_part_size(size, None, &o);
        assert!(size.div_ceil(p) <= 10_000 && p >= 8 << 20);
    }
    assert_eq!(streaming_part_size(100 << 20, None, &o), 8 << 20);
}

#[tokio::test]
async fn a_resumed_copy_counts_what_an_earlier_run_copied_as_copied() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = pair(&dir);
    fill(&src, &["a", "b", "c"]).await;
    // `a` was copied before this run's start time (it was there already); `b` after it (by an
    // earlier run of the same task); `c` is missing.
    put(&dst, "a", &read(&src, "a").await, &WriteOptions::default()).await;
    let since = dst.head("a").await.unwrap().info.last_modified_ms.unwrap() + 1;
    tokio::time::sleep(Duration::from_millis(20)).await;
    put(&dst, "b", &read(&src, "b").await, &WriteOptions::default()).await;
    dst.take_counts();
    let opts = RangeOptions {
        skip_existing: true,
        written_since_ms: Some(since),
        ..ropts(CopyOptions::default())
    };
    let (sum, outcomes) = run_collect(
        RangeOp::Copy,
        &src,
        &dst,
        &KeyRange::default(),
        &KeyMap::identity(),
        &Filter::new(),
        &opts,
    )
    .await;
    let actions: Vec<(&str, &Action)> = outcomes.iter().map(|o| (o.key.as_str(), &o.action)).collect();
    assert_eq!(
        actions,
        [
            ("a", &Action::Skipped(SkipReason::Identical)),
            ("b", &Action::Skipped(SkipReason::CopiedEarlier)),
            ("c", &Action::Copied),
        ]
    );
    assert_eq!((sum.copied, sum.skipped), (1, 2));
    // One destination LIST, one PUT (c): nothing per object for a and b.
    assert_eq!(
        dst.counts(),
        RequestCounts {
            list: 1,
            put: 1,
            ..Default::default()
        }
    );
}

#[tokio::test]
async fn a_resumed_move_reports_what_an_earlier_run_moved() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = pair(&dir);
    fill(&src, &["a", "b", "c", "d"]).await;
    // Before the run: `a` is at the destination from long ago and its source is gone (not this
    // job's work). Then an earlier run moved `b` (written, source deleted) and died.
    put(&dst, "a", &read(&src, "a").await, &WriteOptions::default()).await;
    src.delete_many(&["a".to_string()]).await.unwrap();
    let since = dst.head("a").await.unwrap().info.last_modified_ms.unwrap() + 1;
    tokio::time::sleep(Duration::from_millis(20)).await;
    put(&dst, "b", &read(&src, "b").await, &WriteOptions::default()).await;
    src.delete_many(&["b".to_string()]).await.unwrap();
    let opts = RangeOptions {
        skip_existing: true,
        written_since_ms: Some(since),
        ..ropts(CopyOptions::default())
    };
    // The range (a, c]: `d` is another task's, `a` is before it.
    let range = KeyRange {
        start_after: Some("a".into()),
        end: Some("c".into()),
        ..Default::default()
    };
    let (sum, outcomes) = run_collect(
        RangeOp::Move,
        &src,
        &dst,
        &range,
        &KeyMap::identity(),
        &Filter::new(),
        &opts,
    )
    .await;
    let actions: Vec<(&str, &Action)> = outcomes.iter().map(|o| (o.key.as_str(), &o.action)).collect();
    assert_eq!(
        actions,
        [("c", &Action::Moved), ("b", &Action::Skipped(SkipReason::MovedEarlier)),]
    );
    assert_eq!((sum.copied, sum.skipped, sum.deleted), (1, 1, 1));
    assert_eq!(keys(&src).await, vec!["d"]);
}

/// Two ranges sharing a job worker's node-wide budget stream at most `streams` objects at once
/// between them, whatever each range's own concurrency; without the shared budget they do not.
#[tokio::test]
async fn ranges_sharing_a_budget_stream_within_it() {
    async fn max_puts_at_once(shared: Option<SharedLimits>) -> usize {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = pair(&dir);
        let keys: Vec<String> = (0..12)
            .map(|i| format!("{}/k{i:02}", if i < 6 { "a" } else { "b" }))
            .collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        fill(&src, &refs).await;
        dst.inject(Rule::new(&[Op::Put], Fault::Delay(Duration::from_millis(50))));
        let opts = RangeOptions {
            concurrency: 16,
            shared,
            ..ropts(CopyOptions::default())
        };
        let (ra, rb) = (
            KeyRange {
                prefix: "a/".into(),
                ..Default::default()
            },
            KeyRange {
                prefix: "b/".into(),
                ..Default::default()
            },
        );
        let map = KeyMap::identity();
        let filter = Filter::new();
        let ((a, _), (b, _)) = tokio::join!(
            run_collect(RangeOp::Copy, &src, &dst, &ra, &map, &filter, &opts),
            run_collect(RangeOp::Copy, &src, &dst, &rb, &map, &filter, &opts),
        );
        assert_eq!((a.copied, b.copied), (6, 6));
        dst.max_concurrent_delayed()
    }
    let shared = max_puts_at_once(Some(SharedLimits::new(64, 2, 1))).await;
    assert!(
        (1..=2).contains(&shared),
        "{shared} PUTs at once with a shared budget of 2 streams"
    );
    let alone = max_puts_at_once(None).await;
    assert!(
        alone > 2,
        "without the shared budget the ranges streamed {alone} at once"
    );
}
