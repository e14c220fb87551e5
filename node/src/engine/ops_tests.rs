//! Unit tests of transfer, verification and range operations against the in-memory S3-like
//! store ([`super::memstore`]), which counts requests and injects faults.

use std::collections::BTreeMap;
use std::time::Duration;

use super::filter::Filter;
use super::memstore::{MemServer, MemStore};
use super::ops::*;
use super::store::*;
use super::transfer::*;
use super::verify::{self, Verify};

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn meta_opts() -> WriteOptions {
    WriteOptions {
        content_type: Some("image/png".into()),
        cache_control: Some("max-age=60".into()),
        content_disposition: Some("attachment; filename=\"a b.png\"".into()),
        content_encoding: Some("identity".into()),
        content_language: Some("fr".into()),
        expires: Some("Wed, 21 Oct 2015 07:28:00 GMT".into()),
        user_metadata: BTreeMap::from([
            ("owner".to_string(), "ana".to_string()),
            ("x-y".to_string(), "z".to_string()),
        ]),
        tags: vec![("team".into(), "blue".into()), ("k".into(), "v w".into())],
        ..Default::default()
    }
}

fn fast(mut o: CopyOptions) -> CopyOptions {
    o.retry_min_delay = Duration::from_millis(1);
    o.retry_max_delay = Duration::from_millis(5);
    o
}

async fn assert_same_meta(src: &MemStore, sk: &str, dst: &MemStore, dk: &str) {
    let a = src.head(sk).await.unwrap();
    let b = dst.head(dk).await.unwrap();
    assert_eq!(a.content_type, b.content_type);
    assert_eq!(a.cache_control, b.cache_control);
    assert_eq!(a.content_disposition, b.content_disposition);
    assert_eq!(a.content_encoding, b.content_encoding);
    assert_eq!(a.content_language, b.content_language);
    assert_eq!(a.expires, b.expires);
    assert_eq!(a.user_metadata, b.user_metadata);
    assert_eq!(src.tags(sk), dst.tags(dk));
    assert_eq!(src.data(sk), dst.data(dk));
}

#[tokio::test]
async fn streaming_single_put_carries_metadata_and_tags() {
    let (s1, s2) = (MemServer::new("a"), MemServer::new("b"));
    let (src, dst) = (s1.fs_store("src"), s2.fs_store("dst"));
    src.insert("dir/a b.png", &data(5000, 1), &meta_opts(), None);
    let opts = fast(CopyOptions {
        verify: Verify::Etag,
        ..Default::default()
    });
    let r = copy_object(&src, "dir/a b.png", &dst, "x/a b.png", &opts)
        .await
        .unwrap();
    assert_eq!(r.mode, CopyMode::Streaming);
    assert_eq!(r.parts, None);
    assert!(
        r.verified.etag && r.verified.source_etag && r.verified.size,
        "{:?}",
        r.verified
    );
    assert_same_meta(&src, "dir/a b.png", &dst, "x/a b.png").await;
    assert_eq!(
        r.requests,
        RequestCounts {
            head: 1,
            get_tags: 1,
            get: 1,
            put: 1,
            ..Default::default()
        }
    );
    assert_eq!(r.bytes_through_node, 5000);
}

#[tokio::test]
async fn streaming_multipart_carries_metadata_and_verifies_every_mode() {
    let (s1, s2) = (MemServer::new("a"), MemServer::new("b"));
    let (src, dst) = (s1.fs_store("src"), s2.fs_store("dst"));
    let body = data(2500, 2);
    src.insert("big", &body, &meta_opts(), None);
    for v in [Verify::None, Verify::Size, Verify::Etag, Verify::Checksum] {
        let opts = fast(CopyOptions {
            verify: v,
            multipart_threshold: 1000,
            part_size: Some(300),
            parts_in_flight: 3,
            ..Default::default()
        });
        let r = copy_object(&src, "big", &dst, &format!("big-{v:?}"), &opts)
            .await
            .unwrap();
        assert_eq!(r.parts, Some(9), "{v:?}");
        assert_same_meta(&src, "big", &dst, &format!("big-{v:?}")).await;
        assert_eq!(r.requests.upload_part, 9);
        assert_eq!(r.requests.get, 9);
        match v {
            Verify::Etag => {
                assert!(r.verified.etag && r.verified.source_etag, "{:?}", r.verified);
                // The destination ETag is the multipart ETag of 300-byte parts.
                assert_eq!(r.etag.as_deref(), Some(verify::etag_of(&body, Some(300)).as_str()));
            }
            Verify::Checksum => {
                let (a, c) = r.verified.checksum.clone().unwrap();
                assert_eq!(a, ChecksumAlgo::Crc32c);
                assert_eq!(c, verify::checksum_of(ChecksumAlgo::Crc32c, &body));
            }
            _ => {}
        }
    }
    assert_eq!(s2.open_uploads(), 0);
}

#[tokio::test]
async fn multipart_source_layout_is_matched_so_etags_agree() {
    let (s1, s2) = (MemServer::new("a"), MemServer::new("b"));
    let (src, dst) = (s1.fs_store("src"), s2.fs_store("dst"));
    let body = data(2000, 3);
    src.insert("mp", &body, &WriteOptions::default(), Some(700));
    let src_etag = src.head("mp").await.unwrap().info.etag.unwrap();
    assert!(src_etag.ends_with("-3"));
    let opts = fast(CopyOptions {
        verify: Verify::Etag,
        multipart_threshold: 100,
        part_size: Some(700),
        ..Default::default()
    });
    let r = copy_object(&src, "mp", &dst, "mp", &opts).await.unwrap();
    assert_eq!(r.etag.as_deref(), Some(src_etag.as_str()));
    assert!(r.verified.source_etag);
    // A single PUT of a multipart source still checks the source ETag with the inferred layout.
    let opts = fast(CopyOptions {
        verify: Verify::Etag,
        part_size: Some(700),
        ..Default::default()
    });
    let r = copy_object(&src, "mp", &dst, "mp-single", &opts).await.unwrap();
    assert!(r.verified.source_etag && r.verified.etag, "{:?}", r.verified);
}

#[tokio::test]
async fn server_side_copy_object_costs_one_request() {
    let s = MemServer::new("one");
    let (src, dst) = (s.store("b1", ""), s.store("b2", "backup/"));
    src.insert("k", &data(100, 4), &meta_opts(), None);
    let info = src.list(&KeyRange::default(), 10).await.unwrap().objects.remove(0);
    s.take_counts();
    for v in [Verify::None, Verify::Size, Verify::Etag] {
        let r = copy_listed(
            &src,
            &info,
            &dst,
            "k",
            &fast(CopyOptions {
                verify: v,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
        assert_eq!(r.mode, CopyMode::ServerSide);
        assert_eq!(
            r.requests,
            RequestCounts {
                copy: 1,
                ..Default::default()
            },
            "{v:?}"
        );
    }
    assert_eq!(
        s.take_counts(),
        RequestCounts {
            copy: 3,
            ..Default::default()
        }
    );
    assert_same_meta(&src, "k", &dst, "k").await;
    // Checksum mode: HEAD of the source, then read both sides when the source has no checksum.
    let r = copy_listed(
        &src,
        &info,
        &dst,
        "k2",
        &fast(CopyOptions {
            verify: Verify::Checksum,
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    assert!(r.verified.checksum.is_some());
    // Overriding metadata: HEAD + CopyObject (REPLACE) with the rest kept.
    let over = MetadataOverrides {
        content_type: Some("text/plain".into()),
        ..Default::default()
    };
    let r = copy_listed(
        &src,
        &info,
        &dst,
        "k3",
        &fast(CopyOptions {
            overrides: over,
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    assert_eq!(
        r.requests,
        RequestCounts {
            head: 1,
            copy: 1,
            ..Default::default()
        }
    );
    let m = dst.head("k3").await.unwrap();
    assert_eq!(m.content_type.as_deref(), Some("text/plain"));
    assert_eq!(m.cache_control.as_deref(), Some("max-age=60"));
    assert_eq!(m.user_metadata.get("owner").map(String::as_str), Some("ana"));
    assert_eq!(dst.tags("k3"), src.tags("k"));
}

#[tokio::test]
async fn server_side_copy_to_a_replace_only_store_sends_the_metadata() {
    let s = MemServer::new("one");
    let (src, dst) = (s.store("b1", ""), s.store("b2", "").replace_only());
    src.insert("k", &data(100, 4), &meta_opts(), None);
    let info = src.list(&KeyRange::default(), 10).await.unwrap().objects.remove(0);
    let r = copy_listed(&src, &info, &dst, "k", &fast(CopyOptions::default()))
        .await
        .unwrap();
    assert_eq!(
        r.requests,
        RequestCounts {
            head: 1,
            get_tags: 1,
            copy: 1,
            ..Default::default()
        }
    );
    assert_same_meta(&src, "k", &dst, "k").await;
    let plan = plan_copy(CopyMode::ServerSide, &info, false, &CopyOptions::default());
    assert_eq!(plan.requests, r.requests);
}

#[tokio::test]
async fn server_side_upload_part_copy_keeps_metadata() {
    let s = MemServer::new("one");
    let (src, dst) = (s.store("b1", ""), s.store("b2", ""));
    let body = data(3000, 5);
    src.insert("big", &body, &meta_opts(), None);
    let opts = fast(CopyOptions {
        verify: Verify::Etag,
        copy_object_max: 1000,
        server_part_size: Some(1024),
        ..Default::default()
    });
    let r = copy_object(&src, "big", &dst, "big", &opts).await.unwrap();
    assert_eq!((r.mode, r.parts), (CopyMode::ServerSide, Some(3)));
    assert!(r.verified.etag && r.verified.size);
    assert_eq!(
        r.requests,
        RequestCounts {
            head: 2,
            get_tags: 1,
            create_multipart: 1,
            upload_part_copy: 3,
            complete_multipart: 1,
            ..Default::default()
        }
    );
    assert_same_meta(&src, "big", &dst, "big").await;
    assert_eq!(r.bytes_through_node, 0);
}

#[tokio::test]
async fn broken_get_bodies_are_retried() {
    let (s1, s2) = (MemServer::new("a"), MemServer::new("b"));
    let (src, dst) = (s1.fs_store("src"), s2.fs_store("dst"));
    let body = data(100_000, 6);
    src.insert("k", &body, &WriteOptions::default(), None);
    s1.faults.lock().unwrap().break_gets = 2;
    let r = copy_object(
        &src,
        "k",
        &dst,
        "k",
        &fast(CopyOptions {
            verify: Verify::Etag,
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    assert_eq!(r.requests.get, 3);
    assert_eq!(dst.data("k").unwrap(), body);
    s1.faults.lock().unwrap().break_gets = 2;
    s2.faults.lock().unwrap().transient_writes = 1;
    let opts = fast(CopyOptions {
        verify: Verify::Checksum,
        multipart_threshold: 1,
        part_size: Some(40_000),
        ..Default::default()
    });
    let r = copy_object(&src, "k", &dst, "k2", &opts).await.unwrap();
    assert_eq!(r.requests.get, 5, "3 parts + 2 re-GETs");
    assert_eq!(dst.data("k2").unwrap(), body);
    // Out of retries: the error surfaces and the upload is aborted.
    s1.faults.lock().unwrap().break_gets = 100;
    let e = copy_object(&src, "k", &dst, "k3", &CopyOptions { retries: 2, ..opts })
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(s2.open_uploads(), 0);
}

#[tokio::test]
async fn corruption_is_a_mismatch_and_the_bad_copy_is_deleted() {
    let (s1, s2) = (MemServer::new("a"), MemServer::new("b"));
    let (src, dst) = (s1.fs_store("src"), s2.fs_store("dst"));
    src.insert("k", &data(4000, 7), &WriteOptions::default(), None);
    s2.faults.lock().unwrap().corrupt_on_write.insert("k".into());
    for (v, mp) in [
        (Verify::Etag, false),
        (Verify::Etag, true),
        (Verify::Checksum, false),
        (Verify::Checksum, true),
    ] {
        let opts = fast(CopyOptions {
            verify: v,
            multipart_threshold: if mp { 1 } else { u64::MAX },
            part_size: Some(1500),
            ..Default::default()
        });
        let e = copy_object(&src, "k", &dst, "k", &opts).await.unwrap_err();
        assert!(matches!(e, StoreError::Mismatch { .. }), "{v:?} {mp}: {e}");
        assert!(dst.data("k").is_none(), "bad copy deleted ({v:?} {mp})");
    }
    // A store that reports no checksums is read back.
    s2.faults.lock().unwrap().no_checksums = true;
    let e = copy_object(
        &src,
        "k",
        &dst,
        "k",
        &fast(CopyOptions {
            verify: Verify::Checksum,
            ..Default::default()
        }),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, StoreError::Mismatch { .. }), "{e}");
    // Size alone does not see a flipped byte, and says nothing false.
    let r = copy_object(
        &src,
        "k",
        &dst,
        "k",
        &fast(CopyOptions {
            verify: Verify::Size,
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    assert!(r.verified.size);
    // A source that changed under the copy (tampered bytes, old ETag) is caught by Etag.
    s2.faults.lock().unwrap().corrupt_on_write.clear();
    src.tamper("k");
    let e = copy_object(
        &src,
        "k",
        &dst,
        "k9",
        &fast(CopyOptions {
            verify: Verify::Etag,
            ..Default::default()
        }),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, StoreError::Mismatch { .. }), "{e}");
}

#[tokio::test]
async fn cancellation_aborts_started_uploads() {
    let (s1, s2) = (MemServer::new("a"), MemServer::new("b"));
    let (src, dst) = (s1.fs_store("src"), s2.fs_store("dst"));
    src.insert("k", &data(200_000, 8), &WriteOptions::default(), None);
    let log = UploadLog::new();
    let opts = CopyOptions {
        multipart_threshold: 1,
        part_size: Some(50_000),
        bandwidth: Some(TokenBucket::new(200_000, 16 * 1024)), // ~1 s for the object
        uploads: Some(log.clone()),
        ..Default::default()
    };
    let cancel = opts.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        cancel.cancel();
    });
    let e = copy_object(&src, "k", &dst, "k", &opts).await.unwrap_err();
    assert!(is_cancelled(&e), "{e}");
    assert_eq!(log.started_total(), 1);
    assert!(log.open().is_empty(), "finished in the registry");
    assert_eq!(s2.open_uploads(), 0, "aborted on the store");
    assert_eq!(s2.counts().abort_multipart, 1);
    assert!(dst.data("k").is_none());
}

#[tokio::test]
async fn sweep_aborts_owned_leftovers_only() {
    let s = MemServer::new("a");
    let dst = s.store("b", "");
    let log = UploadLog::new();
    let mine = dst.create_multipart("x/mine", &WriteOptions::default()).await.unwrap();
    log.started(&dst.describe(), "x/mine", &mine);
    let _theirs = dst
        .create_multipart("x/theirs", &WriteOptions::default())
        .await
        .unwrap();
    let aborted = sweep_uploads(&dst, "x/", |u| log.owns(&u.key, &u.upload_id))
        .await
        .unwrap();
    assert_eq!(aborted.len(), 1);
    assert_eq!(aborted[0].key, "x/mine");
    assert_eq!(s.open_uploads(), 1);
}

fn fill(store: &MemStore, keys: &[&str]) {
    for (i, k) in keys.iter().enumerate() {
        store.insert(k, &data(10 + i, i as u8), &WriteOptions::default(), None);
    }
}

fn collect_sink(v: &mut Vec<Outcome>) -> impl FnMut(Outcome) + '_ {
    |o| v.push(o)
}

#[tokio::test]
async fn plain_server_side_range_copy_costs_one_copy_per_object_and_a_list_per_page() {
    let s = MemServer::new("one");
    let (src, dst) = (s.store("b1", "photos/"), s.store("b2", "backup/"));
    for i in 0..2500 {
        src.insert(&format!("k{i:05}"), b"x", &WriteOptions::default(), None);
    }
    s.take_counts();
    let mut out = Vec::new();
    let opts = RangeOptions {
        copy: fast(CopyOptions::default()),
        ..Default::default()
    };
    let sum = run_range(
        RangeOp::Copy,
        &src,
        &dst,
        &KeyRange::default(),
        &KeyMap::identity(),
        &Filter::new(),
        &opts,
        collect_sink(&mut out),
    )
    .await
    .unwrap();
    assert_eq!(sum.copied, 2500);
    assert_eq!(sum.server_side, 2500);
    assert_eq!(
        s.counts(),
        RequestCounts {
            list: 3,
            copy: 2500,
            ..Default::default()
        }
    );
    assert_eq!(sum.requests, s.counts());
    assert_eq!(sum.last_completed_key.as_deref(), Some("k02499"));
    assert_eq!(dst.keys().len(), 2500);
}

#[tokio::test]
async fn move_deletes_only_verified_sources() {
    let (s1, s2) = (MemServer::new("a"), MemServer::new("b"));
    let (src, dst) = (s1.fs_store("src"), s2.fs_store("dst"));
    fill(&src, &["a", "b", "c", "d"]);
    s2.faults.lock().unwrap().deny_write.insert("out/b".into());
    s2.faults.lock().unwrap().corrupt_on_write.insert("out/c".into());
    let mut out = Vec::new();
    let opts = RangeOptions {
        copy: fast(CopyOptions {
            verify: Verify::Etag,
            ..Default::default()
        }),
        concurrency: 2,
        ..Default::default()
    };
    let sum = run_range(
        RangeOp::Move,
        &src,
        &dst,
        &KeyRange::default(),
        &KeyMap::new("", "out/"),
        &Filter::new(),
        &opts,
        collect_sink(&mut out),
    )
    .await
    .unwrap();
    assert_eq!(sum.failed, 2);
    assert_eq!(sum.deleted, 2);
    assert_eq!(src.keys(), vec!["b", "c"], "failed and unverified sources stay");
    assert_eq!(dst.keys(), vec!["out/a", "out/d"]);
    assert_eq!(
        sum.requests.delete,
        1 + 1,
        "one batched delete of sources + the bad copy"
    );
    assert_eq!(sum.last_completed_key.as_deref(), Some("a"));
    let moved: Vec<_> = out
        .iter()
        .filter(|o| o.action == Action::Moved)
        .map(|o| o.key.as_str())
        .collect();
    assert_eq!(moved, vec!["a", "d"]);
}

#[tokio::test]
async fn move_with_verify_none_still_verifies_size_and_fails_delete_is_reported() {
    let s = MemServer::new("one");
    let (src, dst) = (s.store("b1", ""), s.store("b2", ""));
    fill(&src, &["a", "b"]);
    s.faults.lock().unwrap().deny_delete.insert("b".into());
    let mut out = Vec::new();
    let opts = RangeOptions {
        copy: fast(CopyOptions {
            verify: Verify::None,
            ..Default::default()
        }),
        ..Default::default()
    };
    let sum = run_range(
        RangeOp::Move,
        &src,
        &dst,
        &KeyRange::default(),
        &KeyMap::identity(),
        &Filter::new(),
        &opts,
        collect_sink(&mut out),
    )
    .await
    .unwrap();
    assert_eq!((sum.deleted, sum.failed), (1, 1));
    assert_eq!(src.keys(), vec!["b"]);
    assert!(
        matches!(&out.iter().find(|o| o.key == "b").unwrap().action, Action::Failed(StoreError::Other { detail }) if detail.contains("not deleted"))
    );
}

#[tokio::test]
async fn sync_copies_changes_and_deletes_extraneous_but_not_excluded() {
    let (s1, s2) = (MemServer::new("a"), MemServer::new("b"));
    let (src, dst) = (s1.fs_store("src"), s2.fs_store("dst"));
    fill(&src, &["p/a", "p/b", "p/c", "p/tmp/x"]);
    // dst: a identical, b different, extra e, extra tmp/y (excluded), and q/z outside the range.
    let a = src.data("p/a").unwrap();
    dst.insert("p/a", &a, &WriteOptions::default(), None);
    dst.insert("p/b", b"old", &WriteOptions::default(), None);
    dst.insert("p/e", b"extra", &WriteOptions::default(), None);
    dst.insert("p/tmp/y", b"keep", &WriteOptions::default(), None);
    dst.insert("q/z", b"outside", &WriteOptions::default(), None);
    let filter = Filter::new().exclude("tmp/**").unwrap();
    let range = KeyRange {
        prefix: "p/".into(),
        ..Default::default()
    };
    let map = KeyMap::new("p/", "p/");
    let opts = RangeOptions {
        copy: fast(CopyOptions::default()),
        ..Default::default()
    };

    // Dry run first: nothing written.
    let mut out = Vec::new();
    let dry = RangeOptions {
        dry_run: true,
        ..opts.clone()
    };
    let sum = run_range(
        RangeOp::Sync { delete: true },
        &src,
        &dst,
        &range,
        &map,
        &filter,
        &dry,
        collect_sink(&mut out),
    )
    .await
    .unwrap();
    assert_eq!(
        (sum.would_copy, sum.would_delete, sum.skipped, sum.excluded),
        (2, 1, 1, 1)
    );
    assert_eq!(
        sum.requests,
        RequestCounts {
            list: 2,
            ..Default::default()
        },
        "only listings are real"
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
    assert_eq!(
        sum.bytes_cross_endpoint,
        src.data("p/b").unwrap().len() as u64 + src.data("p/c").unwrap().len() as u64
    );
    assert_eq!(dst.keys(), vec!["p/a", "p/b", "p/e", "p/tmp/y", "q/z"]);

    let mut out = Vec::new();
    let sum = run_range(
        RangeOp::Sync { delete: true },
        &src,
        &dst,
        &range,
        &map,
        &filter,
        &opts,
        collect_sink(&mut out),
    )
    .await
    .unwrap();
    assert_eq!((sum.copied, sum.skipped, sum.deleted, sum.failed), (2, 1, 1, 0));
    assert_eq!(dst.keys(), vec!["p/a", "p/b", "p/c", "p/tmp/y", "q/z"]);
    assert_eq!(dst.data("p/b"), src.data("p/b"));
    assert_eq!(sum.last_completed_key.as_deref(), Some("p/tmp/x"));
    assert!(out.iter().any(|o| o.dst_key == "p/e" && o.action == Action::Deleted));

    // Second run: everything identical.
    let sum = run_range(
        RangeOp::Sync { delete: true },
        &src,
        &dst,
        &range,
        &map,
        &filter,
        &opts,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!((sum.copied, sum.skipped, sum.deleted), (0, 3, 0));
}

#[tokio::test]
async fn sync_deletes_nothing_in_a_range_with_an_error() {
    let (s1, s2) = (MemServer::new("a"), MemServer::new("b"));
    let (src, dst) = (s1.fs_store("src"), s2.fs_store("dst"));
    fill(&src, &["a", "b", "c"]);
    dst.insert("d", b"extra", &WriteOptions::default(), None);
    dst.insert("0", b"extra", &WriteOptions::default(), None);
    s2.faults.lock().unwrap().deny_write.insert("b".into());
    let mut out = Vec::new();
    let opts = RangeOptions {
        copy: fast(CopyOptions::default()),
        ..Default::default()
    };
    let sum = run_range(
        RangeOp::Sync { delete: true },
        &src,
        &dst,
        &KeyRange::default(),
        &KeyMap::identity(),
        &Filter::new(),
        &opts,
        collect_sink(&mut out),
    )
    .await
    .unwrap();
    assert_eq!((sum.copied, sum.failed, sum.deleted), (2, 1, 0));
    assert!(
        sum.delete_suppressed.as_deref().unwrap().contains("failed"),
        "{:?}",
        sum.delete_suppressed
    );
    assert_eq!(dst.keys(), vec!["0", "a", "c", "d"]);
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o.action, Action::DeleteSuppressed(_)))
            .count(),
        2
    );
    assert_eq!(sum.last_completed_key, None, "the extraneous `0` is not finished");
    // max_delete guards too.
    s2.faults.lock().unwrap().deny_write.clear();
    let opts = RangeOptions {
        max_delete: Some(1),
        ..opts
    };
    let sum = run_range(
        RangeOp::Sync { delete: true },
        &src,
        &dst,
        &KeyRange::default(),
        &KeyMap::identity(),
        &Filter::new(),
        &opts,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(sum.deleted, 0);
    assert!(sum.delete_suppressed.unwrap().contains("max_delete"));
}

#[tokio::test]
async fn skip_existing_uses_the_listing_not_heads() {
    let s = MemServer::new("one");
    let (src, dst) = (s.store("b1", ""), s.store("b2", ""));
    fill(&src, &["a", "b", "c"]);
    dst.insert("a", &src.data("a").unwrap(), &WriteOptions::default(), None);
    s.take_counts();
    let opts = RangeOptions {
        copy: fast(CopyOptions::default()),
        skip_existing: true,
        ..Default::default()
    };
    let sum = run_range(
        RangeOp::Copy,
        &src,
        &dst,
        &KeyRange::default(),
        &KeyMap::identity(),
        &Filter::new(),
        &opts,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!((sum.copied, sum.skipped), (2, 1));
    assert_eq!(
        s.counts(),
        RequestCounts {
            list: 2,
            copy: 2,
            ..Default::default()
        }
    );
}

#[tokio::test]
async fn ranges_checkpoints_and_filters_on_sizes() {
    let s = MemServer::new("one");
    let (src, dst) = (s.store("b1", ""), s.store("b2", ""));
    fill(&src, &["a", "b", "c", "d", "e"]);
    let range = KeyRange {
        prefix: String::new(),
        start_after: Some("a".into()),
        end: Some("d".into()),
    };
    let filter = Filter {
        min_size: Some(12),
        ..Default::default()
    };
    let mut out = Vec::new();
    let opts = RangeOptions {
        copy: fast(CopyOptions::default()),
        page_size: 2,
        ..Default::default()
    };
    let sum = run_range(
        RangeOp::Copy,
        &src,
        &dst,
        &range,
        &KeyMap::identity(),
        &filter,
        &opts,
        collect_sink(&mut out),
    )
    .await
    .unwrap();
    // b (11 bytes) excluded by size; c, d copied; a and e outside the range.
    assert_eq!((sum.listed_objects, sum.excluded, sum.copied), (3, 1, 2));
    assert_eq!(dst.keys(), vec!["c", "d"]);
    assert_eq!(sum.last_completed_key.as_deref(), Some("d"));
    assert_eq!(sum.requests.list, 2);
}

#[tokio::test]
async fn dry_run_reports_server_side_costs_and_no_bytes() {
    let s = MemServer::new("one");
    let (src, dst) = (s.store("b1", ""), s.store("b2", ""));
    fill(&src, &["a", "b"]);
    src.insert("big", &data(3000, 9), &WriteOptions::default(), None);
    let opts = RangeOptions {
        copy: fast(CopyOptions {
            copy_object_max: 1000,
            server_part_size: Some(1024),
            ..Default::default()
        }),
        dry_run: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    let sum = run_range(
        RangeOp::Move,
        &src,
        &dst,
        &KeyRange::default(),
        &KeyMap::identity(),
        &Filter::new(),
        &opts,
        collect_sink(&mut out),
    )
    .await
    .unwrap();
    assert_eq!(sum.would_copy, 3);
    assert_eq!(sum.bytes_cross_endpoint, 0);
    assert_eq!(sum.planned_requests.copy, 2);
    assert_eq!(sum.planned_requests.upload_part_copy, 3);
    assert!(out.iter().all(|o| o.action == Action::WouldMove));
    assert_eq!(src.keys().len(), 3);
    assert!(dst.keys().is_empty());
}

#[tokio::test]
async fn cancelled_range_drains_and_reports_interruption() {
    let (s1, s2) = (MemServer::new("a"), MemServer::new("b"));
    let (src, dst) = (s1.fs_store("src"), s2.fs_store("dst"));
    for i in 0..20 {
        src.insert(&format!("k{i:02}"), &data(50_000, i), &WriteOptions::default(), None);
    }
    let log = UploadLog::new();
    let copy = CopyOptions {
        multipart_threshold: 1,
        part_size: Some(20_000),
        bandwidth: Some(TokenBucket::new(500_000, 16 * 1024)),
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
    let sum = run_range(
        RangeOp::Copy,
        &src,
        &dst,
        &KeyRange::default(),
        &KeyMap::identity(),
        &Filter::new(),
        &opts,
        |_| {},
    )
    .await
    .unwrap();
    assert!(
        sum.interrupted.as_ref().is_some_and(is_cancelled),
        "{:?}",
        sum.interrupted
    );
    assert!(sum.copied < 20);
    assert_eq!(s2.open_uploads(), 0);
    assert!(log.open().is_empty());
    if let Some(k) = &sum.last_completed_key {
        for sk in src.keys().iter().filter(|s| *s <= k) {
            assert_eq!(dst.data(sk), src.data(sk), "{sk} is before the checkpoint");
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
        })
        .unwrap()
        .unwrap();
    assert_eq!(s.prefix, "photos/a");
    assert_eq!(
        d,
        KeyRange {
            prefix: "backup/2024/a".into(),
            start_after: Some("backup/2024/a1".into()),
            end: Some("backup/2024/a9".into())
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
