//! The transfer layer (`engine::transfer`, `engine::ops`) against real SeaweedFS servers
//! (`mesh_tests::seaweed`): server-side CopyObject and UploadPartCopy, streaming between two
//! instances, every verification mode with a forced mismatch, move and sync semantics, the key
//! corpus, a network fault mid-stream through the fault proxy, and abort of unfinished uploads;
//! and the request costs of server-side paths, counted by `engine::faulty::FaultyStore` on the
//! real stores.
//! Faults are triggered on observed progress (bytes through the proxy, requests a store saw),
//! never after a fixed time, so the tests mean the same on a loaded machine.
//! Every test prints `SKIP: …` and returns when SeaweedFS cannot be installed or started.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mesh_engine::faulty::{Fault, FaultyStore, Op, Rule};
use mesh_engine::filter::Filter;
use mesh_engine::ops::*;
use mesh_engine::s3::S3Store;
use mesh_engine::store::*;
use mesh_engine::testkit::*;
use mesh_engine::throttle::ByteRateLimiter;
use mesh_engine::transfer::*;
use mesh_engine::verify::Verify;
use mesh_engine::S3Clients;
use mesh_tests::seaweed::SeaweedFs;
use mesh_tests::wait::until;
use mesh_tests::FaultProxy;

const MIB: usize = 1024 * 1024;

/// A fresh, uniquely named bucket and a store on it (under `prefix`).
async fn bucket(clients: &S3Clients, endpoint: &str, what: &str, prefix: &str) -> S3Store {
    s3_bucket(clients, endpoint, &unique_bucket(&format!("ops-{what}")), prefix).await
}

/// [`bucket`] behind a [`FaultyStore`] (request counts, injected faults).
async fn faulty_bucket(clients: &S3Clients, endpoint: &str, what: &str, prefix: &str) -> FaultyStore {
    FaultyStore::new(Arc::new(bucket(clients, endpoint, what, prefix).await))
}

#[tokio::test]
async fn s3_server_side_copy_object_and_upload_part_copy() {
    let Some(sw) = SeaweedFs::shared_or_skip() else { return };
    let clients = S3Clients::new();
    let (src, dst) = (
        faulty_bucket(&clients, &sw.endpoint(), "ss-src", "").await,
        faulty_bucket(&clients, &sw.endpoint(), "ss-dst", "").await,
    );
    put(&src, "small.json", &data(1000, 1), &rich()).await;
    let big = data(12 * MIB + 123, 2);
    put(&src, "big.bin", &big, &rich()).await;
    for v in [Verify::Size, Verify::Etag, Verify::Checksum] {
        let opts = quick(CopyOptions {
            verify: v,
            copy_object_max: 5 * MIB as u64,
            server_part_size: Some(5 * MIB as u64),
            ..Default::default()
        });
        let r = copy_object(&src, "small.json", &dst, &format!("{v:?}/small.json"), &opts)
            .await
            .unwrap_or_else(|e| panic!("{v:?}: {e}"));
        assert_eq!((r.mode, r.parts), (CopyMode::ServerSide, None), "{v:?}");
        if v != Verify::Checksum {
            assert_eq!(r.bytes_through_node, 0, "{v:?}");
        }
        println!("{v:?} small: verified {:?}", r.verified);
        assert_carried(&src, "small.json", &dst, &format!("{v:?}/small.json")).await;
        src.take_counts();
        dst.take_counts();
        let r = copy_object(&src, "big.bin", &dst, &format!("{v:?}/big.bin"), &opts)
            .await
            .unwrap_or_else(|e| panic!("{v:?}: {e}"));
        assert_eq!((r.mode, r.parts), (CopyMode::ServerSide, Some(3)), "{v:?}");
        let mut seen = src.take_counts();
        seen += dst.take_counts();
        assert_eq!(seen, r.requests, "{v:?}: what the stores saw");
        if v != Verify::Checksum {
            // UploadPartCopy: metadata and tags are read and set on CreateMultipartUpload; the
            // destination is HEADed for its size.
            assert_eq!(
                r.requests,
                RequestCounts {
                    head: 2,
                    get_tags: 1,
                    create_multipart: 1,
                    upload_part_copy: 3,
                    complete_multipart: 1,
                    ..Default::default()
                },
                "{v:?}"
            );
            assert!(r.verified.size, "{v:?}: {:?}", r.verified);
            assert_eq!(r.bytes_through_node, 0, "{v:?}");
        }
        if v == Verify::Etag {
            // SeaweedFS stores a part (≥ 5 MiB, its minimum) in several chunks and gives it a
            // chunked ETag (`…-2`): not an MD5, so the engine says so and verifies by size.
            assert!(
                r.verified.etag || r.verified.notes.iter().any(|n| n.contains("not MD5-based")),
                "{:?}",
                r.verified
            );
        }
        assert_carried(&src, "big.bin", &dst, &format!("{v:?}/big.bin")).await;
        println!("{v:?}: verified {:?}", r.verified);
    }
    assert!(dst.list_multipart_uploads("").await.unwrap().is_empty());
}

#[tokio::test]
async fn s3_server_side_copy_object_costs_one_request() {
    let Some(sw) = SeaweedFs::shared_or_skip() else { return };
    let clients = S3Clients::new();
    let src = faulty_bucket(&clients, &sw.endpoint(), "one-src", "").await;
    let dst = faulty_bucket(&clients, &sw.endpoint(), "one-dst", "backup/").await;
    put(&src, "k", &data(100, 4), &rich()).await;
    let info = src.list(&KeyRange::default(), 10).await.unwrap().objects.remove(0);
    assert!(
        dst.copy_keeps_metadata(),
        "S3Store: MetadataDirective/TaggingDirective COPY"
    );
    src.take_counts();
    for v in [Verify::None, Verify::Size, Verify::Etag] {
        let opts = quick(CopyOptions {
            verify: v,
            ..Default::default()
        });
        let r = copy_listed(&src, &info, &dst, "k", &opts).await.unwrap();
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
    assert_eq!(src.take_counts(), RequestCounts::default(), "the source sees nothing");
    assert_eq!(
        dst.take_counts(),
        RequestCounts {
            copy: 3,
            ..Default::default()
        }
    );
    assert_carried(&src, "k", &dst, "k").await;
    // Checksum mode: HEAD of the source, then read both sides when the stores report none.
    let r = copy_listed(
        &src,
        &info,
        &dst,
        "k2",
        &quick(CopyOptions {
            verify: Verify::Checksum,
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    assert!(r.verified.checksum.is_some(), "{:?}", r.verified);
    // Overriding metadata: HEAD + CopyObject (REPLACE) with the rest kept, tags by COPY.
    let over = MetadataOverrides {
        content_type: Some("text/plain".into()),
        ..Default::default()
    };
    let r = copy_listed(
        &src,
        &info,
        &dst,
        "k3",
        &quick(CopyOptions {
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
    let (m, want) = (dst.head("k3").await.unwrap(), rich());
    assert_eq!(m.content_type.as_deref(), Some("text/plain"));
    assert_eq!(m.cache_control, want.cache_control);
    assert_eq!(m.user_metadata, want.user_metadata);
    let (mut a, mut b) = (src.get_tags("k").await.unwrap(), dst.get_tags("k3").await.unwrap());
    a.sort();
    b.sort();
    assert_eq!(a, b, "tags kept");
}

#[tokio::test]
async fn s3_server_side_copy_to_a_replace_only_store_sends_the_metadata() {
    let Some(sw) = SeaweedFs::shared_or_skip() else { return };
    let clients = S3Clients::new();
    let src = bucket(&clients, &sw.endpoint(), "ro-src", "").await;
    let dst = FaultyStore::new(Arc::new(bucket(&clients, &sw.endpoint(), "ro-dst", "").await))
        .with_copy_keeps_metadata(false);
    put(&src, "k", &data(100, 4), &rich()).await;
    let info = src.list(&KeyRange::default(), 10).await.unwrap().objects.remove(0);
    let r = copy_listed(&src, &info, &dst, "k", &quick(CopyOptions::default()))
        .await
        .unwrap();
    assert_eq!(r.mode, CopyMode::ServerSide);
    assert_eq!(
        r.requests,
        RequestCounts {
            head: 1,
            get_tags: 1,
            copy: 1,
            ..Default::default()
        }
    );
    assert_carried(&src, "k", &dst, "k").await;
    let plan = plan_copy(CopyMode::ServerSide, &info, false, &CopyOptions::default());
    assert_eq!(plan.requests, r.requests, "the dry-run plan matches");
}

#[tokio::test]
async fn s3_plain_server_side_range_copy_costs_one_copy_per_object_and_a_list_per_page() {
    let Some(sw) = SeaweedFs::shared_or_skip() else { return };
    let clients = S3Clients::new();
    let src = faulty_bucket(&clients, &sw.endpoint(), "pl-src", "photos/").await;
    let dst = faulty_bucket(&clients, &sw.endpoint(), "pl-dst", "backup/").await;
    // 1,001 objects: two pages of the default 1,000 keys.
    let n = 1001;
    futures::stream::iter(0..n)
        .map(|i| {
            let src = &src;
            async move { put(src, &format!("k{i:05}"), b"x", &WriteOptions::default()).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    src.take_counts();
    let opts = RangeOptions {
        copy: quick(CopyOptions::default()),
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
    assert_eq!((sum.copied, sum.server_side, sum.failed), (n, n, 0));
    let want = RequestCounts {
        list: 2,
        copy: n,
        ..Default::default()
    };
    assert_eq!(sum.requests, want);
    let mut seen = src.counts();
    seen += dst.counts();
    assert_eq!(seen, want, "what the stores saw");
    assert_eq!(sum.last_completed_key.as_deref(), Some("k01000"));
    assert_eq!(keys(&dst).await.len() as u64, n);
    println!("plain server-side copy of {n} objects: {:?}", sum.requests.classes());
}

#[tokio::test]
async fn s3_dry_run_reports_server_side_costs_and_no_bytes() {
    let Some(sw) = SeaweedFs::shared_or_skip() else { return };
    let clients = S3Clients::new();
    let src = faulty_bucket(&clients, &sw.endpoint(), "dr-src", "").await;
    let dst = faulty_bucket(&clients, &sw.endpoint(), "dr-dst", "").await;
    put(&src, "a", b"a", &WriteOptions::default()).await;
    put(&src, "b", b"bb", &WriteOptions::default()).await;
    put(&src, "big", &data(3000, 9), &WriteOptions::default()).await;
    src.take_counts();
    let opts = RangeOptions {
        copy: quick(CopyOptions {
            copy_object_max: 1000,
            server_part_size: Some(1024),
            ..Default::default()
        }),
        dry_run: true,
        ..Default::default()
    };
    let (sum, out) = run_collect(
        RangeOp::Move,
        &src,
        &dst,
        &KeyRange::default(),
        &KeyMap::identity(),
        &Filter::new(),
        &opts,
    )
    .await;
    assert_eq!(sum.would_copy, 3);
    assert_eq!(sum.bytes_cross_endpoint, 0);
    assert_eq!(sum.planned_requests.copy, 2);
    assert_eq!(sum.planned_requests.upload_part_copy, 3);
    assert!(out.iter().all(|o| o.action == Action::WouldMove), "{out:#?}");
    let list = RequestCounts {
        list: 1,
        ..Default::default()
    };
    assert_eq!(
        (src.counts(), dst.counts()),
        (list, RequestCounts::default()),
        "only the listing is real"
    );
    assert_eq!(keys(&src).await.len(), 3);
    assert!(keys(&dst).await.is_empty());
}

#[tokio::test]
async fn s3_streaming_between_two_instances_every_verification() {
    let Some(sw) = SeaweedFs::shared_or_skip() else { return };
    let Some(sw2) = SeaweedFs::builder().start_or_skip() else {
        return;
    };
    let clients = S3Clients::new();
    let src = bucket(&clients, &sw.endpoint(), "st-src", "").await;
    let dst = bucket(&clients, &sw2.endpoint(), "st-dst", "").await;
    put(&src, "s", &data(300_000, 3), &rich()).await;
    put(&src, "m", &data(11 * MIB, 4), &rich()).await;
    for v in [Verify::None, Verify::Size, Verify::Etag, Verify::Checksum] {
        for k in ["s", "m"] {
            let opts = quick(CopyOptions {
                verify: v,
                multipart_threshold: 5 * MIB as u64,
                part_size: Some(5 * MIB as u64),
                ..Default::default()
            });
            let dk = format!("{v:?}/{k}");
            let r = copy_object(&src, k, &dst, &dk, &opts)
                .await
                .unwrap_or_else(|e| panic!("{v:?} {k}: {e}"));
            assert_eq!(r.mode, CopyMode::Streaming);
            assert_eq!(r.parts, if k == "m" { Some(3) } else { None });
            assert_carried(&src, k, &dst, &dk).await;
            if v == Verify::Etag {
                assert!(r.verified.etag, "{k}: {:?}", r.verified);
                assert!(r.verified.source_etag, "{k}: {:?}", r.verified);
            }
            if v == Verify::Checksum {
                assert!(r.verified.checksum.is_some(), "{k}: {:?}", r.verified);
            }
            println!("{v:?} {k}: {:?} requests {:?}", r.verified, r.requests.classes());
        }
    }
    // To and from a filesystem location.
    let dir = tempfile::tempdir().unwrap();
    let fs = fs_store(dir.path(), "fs");
    let opts = quick(CopyOptions {
        verify: Verify::Etag,
        multipart_threshold: 5 * MIB as u64,
        part_size: Some(5 * MIB as u64),
        ..Default::default()
    });
    copy_object(&src, "m", &fs, "m", &opts).await.unwrap();
    copy_object(&fs, "m", &dst, "back/m", &opts).await.unwrap();
    assert_carried(&src, "m", &dst, "back/m").await;
}

#[tokio::test]
async fn s3_forced_mismatch_is_detected_and_the_bad_copy_deleted() {
    let Some(sw) = SeaweedFs::shared_or_skip() else { return };
    let Some(sw2) = SeaweedFs::builder().start_or_skip() else {
        return;
    };
    let clients = S3Clients::new();
    let src = bucket(&clients, &sw.endpoint(), "mm-src", "").await;
    let dst = faulty_bucket(&clients, &sw2.endpoint(), "mm-dst", "").await;
    dst.inject(Rule::new(Op::UPLOADS, Fault::Tamper));
    put(&src, "s", &data(100_000, 5), &WriteOptions::default()).await;
    put(&src, "m", &data(11 * MIB, 6), &WriteOptions::default()).await;
    for v in [Verify::Etag, Verify::Checksum] {
        for k in ["s", "m"] {
            let opts = quick(CopyOptions {
                verify: v,
                multipart_threshold: 5 * MIB as u64,
                part_size: Some(5 * MIB as u64),
                ..Default::default()
            });
            let e = copy_object(&src, k, &dst, k, &opts).await.unwrap_err();
            assert!(matches!(e, StoreError::Mismatch { .. }), "{v:?} {k}: {e}");
            println!("{v:?} {k}: {e}");
            assert!(
                matches!(dst.head(k).await, Err(StoreError::NotFound { .. })),
                "{v:?} {k}: the bad copy is deleted"
            );
        }
    }
    assert!(dst.list_multipart_uploads("").await.unwrap().is_empty());
    // Size cannot see a flipped byte: it passes (documented), the bytes differ.
    let r = copy_object(
        &src,
        "s",
        &dst,
        "s",
        &quick(CopyOptions {
            verify: Verify::Size,
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    assert!(r.verified.size);
    assert_ne!(read(&src, "s").await, read(&dst, "s").await);
}

#[tokio::test]
async fn s3_move_and_sync_semantics() {
    let Some(sw) = SeaweedFs::shared_or_skip() else { return };
    let clients = S3Clients::new();
    let src = bucket(&clients, &sw.endpoint(), "mv-src", "").await;
    let dst = faulty_bucket(&clients, &sw.endpoint(), "mv-dst", "").await;
    for k in ["a", "b", "c", "d"] {
        put(&src, &format!("mv/{k}"), k.as_bytes(), &WriteOptions::default()).await;
    }
    dst.inject(Rule::new(Op::WRITES, Fault::denied()).key("moved/b"));
    let opts = RangeOptions {
        copy: quick(CopyOptions {
            verify: Verify::Etag,
            ..Default::default()
        }),
        ..Default::default()
    };
    let range = KeyRange {
        prefix: "mv/".into(),
        ..Default::default()
    };
    let (sum, out) = run_collect(
        RangeOp::Move,
        &src,
        &dst,
        &range,
        &KeyMap::new("mv/", "moved/"),
        &Filter::new(),
        &opts,
    )
    .await;
    assert_eq!((sum.deleted, sum.failed), (3, 1), "{out:#?}");
    assert_eq!(keys(&src).await, vec!["mv/b"]);
    assert_eq!(keys(&dst).await, vec!["moved/a", "moved/c", "moved/d"]);
    assert_eq!(sum.requests.delete, 1, "one batched DeleteObjects");

    // Sync with --delete and an exclude; then a range with an error deletes nothing.
    for k in ["s/a", "s/b", "s/logs/1"] {
        put(&src, k, k.as_bytes(), &WriteOptions::default()).await;
    }
    for k in ["s/b", "s/extra", "s/logs/keep"] {
        put(&dst, k, b"old", &WriteOptions::default()).await;
    }
    let filter = Filter::new().exclude("logs/**").unwrap();
    let range = KeyRange {
        prefix: "s/".into(),
        ..Default::default()
    };
    let map = KeyMap::new("s/", "s/");
    dst.inject(Rule::new(Op::WRITES, Fault::denied()).key("s/a"));
    let (sum, _) = run_collect(RangeOp::Sync { delete: true }, &src, &dst, &range, &map, &filter, &opts).await;
    assert_eq!((sum.failed, sum.deleted), (1, 0));
    assert!(sum.delete_suppressed.is_some());
    dst.heal();
    let dry = RangeOptions {
        dry_run: true,
        ..opts.clone()
    };
    let (sum, _) = run_collect(RangeOp::Sync { delete: true }, &src, &dst, &range, &map, &filter, &dry).await;
    assert_eq!(
        (sum.would_copy, sum.would_delete),
        (1, 1),
        "b was copied by the failed run; a is missing"
    );
    assert_eq!(sum.requests.list, 2);
    let (sum, _) = run_collect(RangeOp::Sync { delete: true }, &src, &dst, &range, &map, &filter, &opts).await;
    assert_eq!((sum.failed, sum.copied, sum.deleted), (0, 1, 1));
    let mut got = keys(&dst).await;
    got.retain(|k| k.starts_with("s/"));
    assert_eq!(got, vec!["s/a", "s/b", "s/logs/keep"]);
    assert_eq!(read(&dst, "s/b").await, b"s/b");
}

#[tokio::test]
async fn s3_key_corpus_through_copy() {
    let Some(sw) = SeaweedFs::shared_or_skip() else { return };
    let clients = S3Clients::new();
    let src = bucket(&clients, &sw.endpoint(), "kc-src", "").await;
    let dst = bucket(&clients, &sw.endpoint(), "kc-dst", "").await;
    // SeaweedFS-safe keys (no empty segments, no segment over 255 bytes: it stores keys as filer
    // paths; the fs unit test adds those).
    let corpus = key_corpus();
    for k in &corpus {
        put(&src, k, &corpus_data(k), &WriteOptions::default()).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let fs = fs_store(dir.path(), "fs");
    let opts = RangeOptions {
        copy: quick(CopyOptions {
            verify: Verify::Etag,
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut sorted = corpus.clone();
    sorted.sort();
    // server-side (same endpoint), then streaming to a filesystem and back.
    let (sum, out) = run_collect(
        RangeOp::Copy,
        &src,
        &dst,
        &KeyRange::default(),
        &KeyMap::identity(),
        &Filter::new(),
        &opts,
    )
    .await;
    let failed: Vec<_> = out.iter().filter(|o| matches!(o.action, Action::Failed(_))).collect();
    assert_eq!((sum.copied, sum.failed), (corpus.len() as u64, 0), "{failed:#?}");
    // All server-side except "folder/": SeaweedFS refuses a folder marker as a copy source
    // (NotFound), and the engine streams it instead.
    assert_eq!(sum.server_side, corpus.len() as u64 - 1);
    let (sum, _) = run_collect(
        RangeOp::Copy,
        &dst,
        &fs,
        &KeyRange::default(),
        &KeyMap::identity(),
        &Filter::new(),
        &opts,
    )
    .await;
    assert_eq!(
        (sum.copied, sum.failed, sum.streamed),
        (corpus.len() as u64, 0, corpus.len() as u64)
    );
    let back = bucket(&clients, &sw.endpoint(), "kc-back", "").await;
    let (sum, _) = run_collect(
        RangeOp::Copy,
        &fs,
        &back,
        &KeyRange::default(),
        &KeyMap::identity(),
        &Filter::new(),
        &opts,
    )
    .await;
    assert_eq!((sum.copied, sum.failed), (corpus.len() as u64, 0));
    let mut got = keys(&back).await;
    got.sort(); // SeaweedFS lists directory by directory, not in S3 byte order
    assert_eq!(got, sorted);
    for k in &corpus {
        assert!(read(&src, k).await == read(&back, k).await, "{k}");
    }
    // And sync sees them identical.
    let (sum, _) = run_collect(
        RangeOp::Sync { delete: true },
        &src,
        &back,
        &KeyRange::default(),
        &KeyMap::identity(),
        &Filter::new(),
        &opts,
    )
    .await;
    assert_eq!((sum.copied, sum.deleted, sum.skipped), (0, 0, corpus.len() as u64));
}

#[tokio::test]
async fn s3_network_fault_mid_stream_is_retried_and_completes() {
    let Some(sw) = SeaweedFs::shared_or_skip() else { return };
    let Some(sw2) = SeaweedFs::builder().start_or_skip() else {
        return;
    };
    let clients = S3Clients::new();
    let direct = bucket(&clients, &sw.endpoint(), "nf-src", "").await;
    let dst = bucket(&clients, &sw2.endpoint(), "nf-dst", "").await;
    let body = data(16 * MIB, 7);
    put(&direct, "big", &body, &rich()).await;
    put(&direct, "single", &body, &rich()).await;
    let proxy = FaultProxy::start(
        &tokio::runtime::Handle::current(),
        "127.0.0.1:0".parse().unwrap(),
        sw.s3_addr(),
    )
    .unwrap();
    let mut sp = s3_spec(&format!("http://{}", proxy.addr()), "unused", "");
    sp.bucket = direct.copy_source("x").unwrap().bucket;
    let via = S3Store::new(sp, clients.clone());
    for (key, mp) in [("big", true), ("single", false)] {
        // The proxy forwards 64 KiB per 10 ms (~6 MiB/s per connection), so the bytes are still
        // on the server's side when the source path is cut once, mid-stream.
        proxy.set_delay(Duration::from_millis(10));
        let (_, from_source) = proxy.bytes_forwarded();
        let (_, refused) = proxy.counters();
        let opts = CopyOptions {
            verify: Verify::Etag,
            multipart_threshold: if mp { 5 * MIB as u64 } else { u64::MAX },
            part_size: Some(5 * MIB as u64),
            retry_min_delay: Duration::from_millis(200),
            retry_max_delay: Duration::from_secs(1),
            retries: 10,
            ..Default::default()
        };
        let cut = async {
            // Mid-stream: 2 MiB of the 16 MiB object have come through (every part, or the one
            // GET, is still far from its end).
            until("2 MiB of the source through the proxy", Duration::from_secs(60), || {
                proxy.bytes_forwarded().1 >= from_source + 2 * MIB as u64
            })
            .await;
            proxy.cut();
            // Healed once the engine has tried the source again and been refused: the cut was
            // seen, and the next retry gets through.
            until("a reconnection refused by the cut", Duration::from_secs(60), || {
                proxy.counters().1 > refused
            })
            .await;
            proxy.heal();
        };
        let (r, ()) = tokio::join!(copy_object(&via, key, &dst, key, &opts), cut);
        let r = r.unwrap_or_else(|e| panic!("{key}: {e}"));
        assert!(r.verified.etag, "{key}: {:?}", r.verified);
        assert!(
            r.requests.get >= if mp { 5 } else { 2 },
            "{key}: re-GET after the cut: {:?}",
            r.requests
        );
        println!("{key}: completed after the cut with {:?}", r.requests.classes());
        assert!(read(&dst, key).await == read(&direct, key).await);
        assert_carried(&direct, key, &dst, key).await;
    }
    assert!(dst.list_multipart_uploads("").await.unwrap().is_empty());
}

#[tokio::test]
async fn s3_cancel_aborts_unfinished_uploads_and_sweep_finds_leftovers() {
    let Some(sw) = SeaweedFs::shared_or_skip() else { return };
    let Some(sw2) = SeaweedFs::builder().start_or_skip() else {
        return;
    };
    let clients = S3Clients::new();
    let src = bucket(&clients, &sw.endpoint(), "ca-src", "").await;
    let dst = faulty_bucket(&clients, &sw2.endpoint(), "ca-dst", "").await;
    put(&src, "big", &data(16 * MIB, 8), &WriteOptions::default()).await;
    let log = UploadLog::new();
    let opts = CopyOptions {
        multipart_threshold: 5 * MIB as u64,
        part_size: Some(5 * MIB as u64),
        // At 4 MiB/s the 16 MiB take at least 3.9 s: the copy is still running when it is
        // cancelled below, however slow the machine.
        bandwidth: Some(ByteRateLimiter::new(4 * MIB as u64, 256 * 1024)),
        uploads: Some(log.clone()),
        ..Default::default()
    };
    let cancel = opts.cancel.clone();
    let (r, ()) = tokio::join!(copy_object(&src, "big", &dst, "big", &opts), async {
        // Cancelled mid-upload: the upload exists and a first part (the 1 MiB last one, done
        // first) was sent, while the parts still in flight hold most of the 16 MiB back behind
        // the bandwidth limit.
        until(
            "the first part sent to the destination",
            Duration::from_secs(60),
            || log.started_total() == 1 && dst.counts().upload_part >= 1,
        )
        .await;
        cancel.cancel();
    });
    let e = r.unwrap_err();
    assert!(is_cancelled(&e), "{e}");
    assert_eq!(log.started_total(), 1);
    assert!(log.open().is_empty());
    assert!(
        dst.list_multipart_uploads("").await.unwrap().is_empty(),
        "aborted on the server"
    );
    assert!(matches!(dst.head("big").await, Err(StoreError::NotFound { .. })));
    assert_eq!(dst.counts().abort_multipart, 1, "aborted by the engine");
    // A leftover (as after a crash) is found by the sweep through the registry.
    let id = dst
        .create_multipart("left/over", &WriteOptions::default())
        .await
        .unwrap();
    log.started(&dst.describe(), "left/over", &id);
    let rep = sweep_uploads(&dst, "", None, |u| log.owns(&u.key, &u.upload_id))
        .await
        .unwrap();
    assert_eq!(rep.aborted.len(), 1);
    assert!(dst.list_multipart_uploads("").await.unwrap().is_empty());
}
