//! Bad input straight through the gRPC API, with no meshctl in front (what a third-party client
//! or a fuzzer sends): every request is bounded, an error echoes at most a short prefix of the
//! input, and nothing is created or half-written.
//! - a job spec with 100,000 filter rules (over the request limit) or 5,000 (over the job's), a
//!   2,000-byte pattern or a path with a NUL byte;
//! - a location with a 900 KB name, a malformed endpoint URL, an fs root with `..`;
//! - an unknown storage class for an Amazon destination (an S3-compatible one keeps any
//!   well-formed name);
//! - a request larger than the public API's limit.
//!
//! And the default credential chain: an s3 location without a credential is accepted and shows
//! its credential as the nodes' default chain.

use mesh_proto::v1::{self as pb, JobOp, LocationKind};
use mesh_tests::TestCluster;
use tonic::Code;

fn fs_location(name: &str, path: &str) -> pb::AddLocationRequest {
    pb::AddLocationRequest {
        location: Some(pb::Location {
            name: name.into(),
            kind: LocationKind::Fs as i32,
            fs_path: path.into(),
            ..Default::default()
        }),
        replace: false,
    }
}

fn s3_location(name: &str, endpoint: &str, storage_class: &str) -> pb::AddLocationRequest {
    pb::AddLocationRequest {
        location: Some(pb::Location {
            name: name.into(),
            kind: LocationKind::S3 as i32,
            bucket: "some-bucket".into(),
            endpoint: endpoint.into(),
            storage_class: storage_class.into(),
            ..Default::default()
        }),
        replace: false,
    }
}

fn spec(src: &str, dst: &str) -> pb::JobSpec {
    pb::JobSpec {
        op: JobOp::Copy as i32,
        src_location: src.into(),
        dst_location: dst.into(),
        ..Default::default()
    }
}

/// The status of a call that must fail with `code`, its message naming `words` and bounded.
fn refused<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, words: &str) -> tonic::Status {
    let s = r.expect_err("the call must be refused");
    assert_eq!(s.code(), code, "{s:?}");
    assert!(s.message().contains(words), "message {:?} lacks {words:?}", s.message());
    assert!(
        s.message().len() < 600,
        "message too long ({} bytes): echoes the input",
        s.message().len()
    );
    s
}

#[test]
fn every_request_is_bounded_and_nothing_is_created() {
    let c = TestCluster::start_new(1);
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let mut cl = c.meshctl_client(0);
    let rt = c.rt();
    rt.block_on(async {
        cl.location
            .add(fs_location("src", src.path().to_str().unwrap()))
            .await
            .unwrap();
        cl.location
            .add(fs_location("dst", dst.path().to_str().unwrap()))
            .await
            .unwrap();

        // Jobs: too many rules, a long pattern, a NUL in a path; no job appears.
        let rules = |n: usize| -> Vec<pb::FilterRule> {
            (0..n)
                .map(|i| pb::FilterRule {
                    include: false,
                    glob: format!("*.{i}"),
                })
                .collect()
        };
        // 100,000 rules are over the request limit: refused while decoding, never proposed.
        let mut many = spec("src", "dst");
        many.rules = rules(100_000);
        refused(
            cl.job.submit(pb::SubmitJobRequest { spec: Some(many) }).await,
            Code::OutOfRange,
            "message length too large",
        );
        // 5,000 fit in a request but not in a job.
        let mut some = spec("src", "dst");
        some.rules = rules(5_000);
        let s = refused(
            cl.job.submit(pb::SubmitJobRequest { spec: Some(some) }).await,
            Code::InvalidArgument,
            "at most 1000",
        );
        assert!(s.message().contains("5000 include/exclude rules"), "{s:?}");
        let mut long = spec("src", "dst");
        long.rules = vec![pb::FilterRule {
            include: true,
            glob: "x".repeat(2_000),
        }];
        refused(
            cl.job.submit(pb::SubmitJobRequest { spec: Some(long) }).await,
            Code::InvalidArgument,
            "2000 bytes long",
        );
        let mut nul = spec("src", "dst");
        nul.dst_path = "backup\0/".into();
        refused(
            cl.job.submit(pb::SubmitJobRequest { spec: Some(nul) }).await,
            Code::InvalidArgument,
            "control character",
        );
        let jobs = cl
            .job
            .list(pb::ListJobsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .jobs;
        assert!(jobs.is_empty(), "a refused job was created: {jobs:?}");

        // Locations: a 900 KB name comes back as a short prefix; a bad URL; `..` in an fs root.
        let huge = "n".repeat(900_000);
        let s = refused(
            cl.location.add(fs_location(&huge, "/tmp/x")).await,
            Code::InvalidArgument,
            "900000 bytes",
        );
        assert!(!s.message().contains(&"n".repeat(100)), "{}", s.message());
        refused(
            cl.location.add(s3_location("bad-url", "http://[::1", "")).await,
            Code::InvalidArgument,
            "is not a URL",
        );
        refused(
            cl.location
                .add(s3_location("user-in-url", "https://key:secret@s3.example.com", ""))
                .await,
            Code::InvalidArgument,
            "user name or password",
        );
        refused(
            cl.location.add(fs_location("escape", "/tmp/../etc")).await,
            Code::InvalidArgument,
            "\"..\" segment",
        );
        // Storage classes: Amazon's list for Amazon, any well-formed name elsewhere.
        refused(
            cl.location.add(s3_location("aws-cold", "", "COLD_AS_ICE")).await,
            Code::InvalidArgument,
            "not an Amazon S3 storage class",
        );
        cl.location
            .add(s3_location("compat-cold", "https://s3.example.com", "COLD_AS_ICE"))
            .await
            .expect("an S3-compatible store may name its own storage classes");

        // A request over the public limit is refused while decoding.
        let over = "o".repeat(mesh_proto::rules::MAX_REQUEST_BYTES + 10);
        refused(
            cl.location.add(fs_location(&over, "/tmp/x")).await,
            Code::OutOfRange,
            "the limit is: 1048576 bytes",
        );

        let names: Vec<String> = cl
            .location
            .list(pb::ListLocationsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .locations
            .into_iter()
            .map(|l| l.name)
            .collect();
        assert_eq!(names, ["compat-cold", "dst", "src"], "only the valid locations exist");

        // An Amazon destination refuses an unknown --storage-class on a job too.
        cl.location
            .add(s3_location("aws-dst", "", ""))
            .await
            .expect("no credential: default chain");
        let mut cold = spec("src", "aws-dst");
        cold.storage_class = "COLD_AS_ICE".into();
        refused(
            cl.job.submit(pb::SubmitJobRequest { spec: Some(cold) }).await,
            Code::InvalidArgument,
            "not an Amazon S3 storage class",
        );

        // The default chain: a location without a credential says so.
        let got = cl
            .location
            .get(pb::GetLocationRequest {
                name: "aws-dst".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.location.unwrap().credential, "");
        let cred = got.credential.expect("the location's credential is described");
        assert_eq!(cred.kind, pb::CredentialKind::DefaultChain as i32);
        assert_eq!(cred.name, "");
    });
}
