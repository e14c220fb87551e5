//! Bad start-up input is refused: missing/invalid flags exit 2 naming the flag, a certificate
//! that does not cover `--advertise` refuses to start, and a data dir of another cluster refuses
//! to join a different cluster.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use mesh_tests::{wait_for, StartMode, TestCluster};

fn without(args: &[String], flag: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
            continue;
        }
        if a == flag {
            skip = true;
            continue;
        }
        out.push(a.clone());
    }
    out
}

fn with(args: &[String], flag: &str, value: &str) -> Vec<String> {
    let mut out = without(args, flag);
    out.extend([flag.to_string(), value.to_string()]);
    out
}

fn mentions(text: &str, words: &[&str]) -> bool {
    let t = text.to_lowercase();
    words.iter().any(|w| t.contains(&w.to_lowercase()))
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let c = TestCluster::builder(1).build();
    let base = c.args(0);
    let fresh = |k: &str, a: Vec<String>| with(&a, "--data-dir", &c.root().join(k).display().to_string());

    let out = c.run_meshd(&fresh("d1", without(&base, "--tls-cert")), Duration::from_secs(20));
    eprintln!("missing --tls-cert: code {:?}: {}", out.code, out.stderr.trim());
    assert_eq!(out.code, Some(2), "missing --tls-cert: {}", out.describe());
    assert!(
        mentions(&out.all_text(), &["tls-cert", "tls_cert"]),
        "message must name --tls-cert: {}",
        out.describe()
    );

    let out = c.run_meshd(
        &fresh("d2", with(&base, "--listen", "not-an-address")),
        Duration::from_secs(20),
    );
    eprintln!("bad --listen: code {:?}: {}", out.code, out.stderr.trim());
    assert_eq!(out.code, Some(2), "bad --listen: {}", out.describe());
    assert!(
        mentions(&out.all_text(), &["listen"]),
        "message must name --listen: {}",
        out.describe()
    );

    let out = c.run_meshd(
        &fresh("d3", with(&base, "--bootstrap-expect", "0")),
        Duration::from_secs(20),
    );
    eprintln!("--bootstrap-expect 0: code {:?}: {}", out.code, out.stderr.trim());
    assert_eq!(out.code, Some(2), "--bootstrap-expect 0: {}", out.describe());
    assert!(
        mentions(&out.all_text(), &["bootstrap-expect", "bootstrap_expect"]),
        "message must name --bootstrap-expect: {}",
        out.describe()
    );
}

#[test]
fn cert_not_covering_advertise_refuses_to_start() {
    let c = TestCluster::builder(1).build();
    let stranger = c
        .pki
        .node_cert("stranger", &[IpAddr::V4(Ipv4Addr::new(127, 254, 254, 254))], &[]);
    let args = with(&c.args(0), "--tls-cert", &stranger.cert.display().to_string());
    let args = with(&args, "--tls-key", &stranger.key.display().to_string());
    let out = c.run_meshd(&args, Duration::from_secs(20));
    eprintln!("cert for another name: code {:?}: {}", out.code, out.stderr.trim());
    assert!(
        !out.timed_out,
        "meshd started with a certificate for another name: {}",
        out.describe()
    );
    assert!(
        matches!(out.code, Some(c) if c != 0),
        "must exit non-zero: {}",
        out.describe()
    );
    let ip = c.node(0).ip.to_string();
    assert!(
        mentions(&out.all_text(), &["advertise", "san", "subject alt", &ip]),
        "message must say the certificate does not cover the advertised address: {}",
        out.describe()
    );
}

#[test]
fn data_dir_of_another_cluster_refuses_to_join() {
    let mut c = TestCluster::start_new(3);
    let main_id = c.status(0).map_err(|o| o.describe()).unwrap().cluster_id;

    // A single-node cluster of its own (same CA, so TLS is not what stops it).
    let f = c.len();
    let added = c.add_node(StartMode::Bootstrap {
        expect: 1,
        join: vec![f],
    });
    assert_eq!(added, f);
    c.start(f);
    let tok = wait_for("the lone node's root token", Duration::from_secs(30), || {
        c.read_root_token(f).ok_or_else(|| "no root-token yet".to_string())
    });
    let other_id = wait_for("the lone node to elect itself", Duration::from_secs(30), || {
        let out = c.ctl_with(f, &tok, &["cluster", "status"], Duration::from_secs(10));
        let v = out.json().map_err(|_| out.describe())?;
        let st = mesh_tests::Status::from_json(v);
        if st.leader_id != 0 {
            Ok(st.cluster_id)
        } else {
            Err(st.summary())
        }
    });
    assert_ne!(other_id, main_id);
    let st = c.sigterm(f, Duration::from_secs(15));
    assert!(st.success(), "lone node SIGTERM: {st:?}");

    // Now point it at the main cluster.
    c.node_mut(f).mode = StartMode::Join { via: vec![0, 1, 2] };
    c.start(f);
    let st = c.wait_exit(f, Duration::from_secs(30));
    let log = c.last_run_log(f);
    let st =
        st.unwrap_or_else(|| panic!("a node of cluster {other_id} kept running against cluster {main_id}:\n{log}"));
    assert!(!st.success(), "must exit non-zero: {st:?}\n{log}");
    assert!(
        mentions(&log, &[&other_id, &main_id, "cluster id", "cluster_id", "cluster-id"]),
        "message must mention the cluster id ({other_id} here, {main_id} there):\n{log}"
    );

    // The main cluster is unaffected.
    let l = c.wait_leader_among(&[0, 1, 2]);
    let st = c.status(0).map_err(|o| o.describe()).unwrap();
    assert_eq!(st.leader_id, l);
    assert_eq!(
        st.nodes.len(),
        3,
        "the foreign node must not be added: {}",
        st.summary()
    );
}
